// Command stepca runs smallstep's step-ca (Debian package
// golang-github-smallstep-certificates-dev, 0.19.0) for the node-join tests.
//
// Usage:
//
//	stepca -config ca.json [-password-file FILE]
//
// The intermediate key password is read from the file named by
// -password-file, or by the STEPCA_PASSWORD_FILE environment variable; it is
// never taken from argv. SIGINT/SIGTERM stop the server, SIGHUP reloads
// ca.json (as step-ca does). Set STEPPATH to a scratch directory: the step
// libraries create it (default $HOME/.step) at start-up.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/ca"
)

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	cfgPath := flag.String("config", "", "path to ca.json (required)")
	pwFile := flag.String("password-file", os.Getenv("STEPCA_PASSWORD_FILE"),
		"file holding the intermediate key password (default $STEPCA_PASSWORD_FILE)")
	flag.Parse()
	if *cfgPath == "" && flag.NArg() == 1 {
		*cfgPath = flag.Arg(0)
	}
	if *cfgPath == "" {
		fmt.Fprintln(os.Stderr, "stepca: -config is required")
		os.Exit(2)
	}

	var opts []ca.Option
	opts = append(opts, ca.WithConfigFile(*cfgPath))
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			log.Fatalf("stepca: reading password file: %v", err)
		}
		opts = append(opts, ca.WithPassword(bytes.TrimRight(b, "\r\n")))
	}

	cfg, err := config.LoadConfiguration(*cfgPath)
	if err != nil {
		log.Fatalf("stepca: %v", err)
	}
	srv, err := ca.New(cfg, opts...)
	if err != nil {
		log.Fatalf("stepca: %v", err)
	}
	go ca.StopReloaderHandler(srv)
	if err := srv.Run(); err != nil && err.Error() != "http: Server closed" {
		log.Fatalf("stepca: %v", err)
	}
}
