// Command stepinit does, for the node-join tests, what `step ca init` and
// `step ca token` do, with the go.step.sm/crypto packages Debian ships.
//
//	stepinit init -out DIR -port PORT -password-file FILE -provisioners SPEC.json
//	    [-address HOST:PORT] [-dns localhost,127.0.0.1] [-name "node-join test"]
//	    [-disable-iat-check]
//
// creates in DIR: root.crt, root.key and intermediate.key (EC P-256,
// encrypted PKCS#8 with the -password-file password), intermediate.crt,
// db/ (bbolt) and ca.json with one JWK provisioner per SPEC entry:
//
//	[{"name": "workers", "passwordFile": "/path", "organization": ["system:nodes"],
//	  "claims": {"allowRenewalAfterExpiry": false}}, ...]
//
// A provisioner with "organization" gets an x509 template that FIXES the
// subject O to that list (CN = the token subject); one without keeps the
// CSR's O and OU (CN = the token subject). Both copy the CSR's SANs (DNS, IP,
// email, URI) into the certificate - step-ca 0.19 checks, per SAN type present
// in the CSR, that the set equals the token's "sans"; a type absent from the
// CSR is not checked, and with these templates is not issued either - and set
// keyUsage digitalSignature+keyEncipherment, extKeyUsage serverAuth+clientAuth.
// "claims" entries override the defaults (min 5m, max 720h, default 24h,
// disableRenewal false, allowRenewalAfterExpiry true). It prints a JSON
// summary {url, rootFingerprint, provisioners: [{name, kid}]} on stdout.
//
//	stepinit token -dir DIR -provisioner NAME -password-file FILE -subject CN
//	    [-san NAME]... [-ca-url URL] [-ttl 5m] [-audience URL] [-jti ID]
//
// prints a one-time JWK token like `step ca token` (header alg ES256, kid,
// typ JWT; claims aud, sub, iss, sans, iat, nbf, exp, jti, sha).
//
//	stepinit renewtoken -dir DIR -cert CHAIN.pem -key KEY.pem [-ca-url URL] [-ttl 5m]
//
// prints an x5cInsecure token signed by the certificate's own key, for
// `POST /1.0/renew` with `Authorization: Bearer <token>`: the only way a 0.19
// CA renews a certificate that has already expired (the TLS handshake rejects
// an expired client certificate), and only when the provisioner that issued
// it has allowRenewalAfterExpiry.
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/pemutil"
	"go.step.sm/crypto/x509util"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "init":
		err = cmdInit(os.Args[2:])
	case "token":
		err = cmdToken(os.Args[2:])
	case "renewtoken":
		err = cmdRenewToken(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stepinit %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: stepinit init|token|renewtoken [flags] (see -h of each)")
	os.Exit(2)
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func readPassword(file string) ([]byte, error) {
	if file == "" {
		return nil, fmt.Errorf("a password file is required")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) == 0 {
		return nil, fmt.Errorf("password file %s is empty", file)
	}
	return b, nil
}

// ---------------------------------------------------------------- init

type provisionerSpec struct {
	Name         string                 `json:"name"`
	PasswordFile string                 `json:"passwordFile"`
	Organization *[]string              `json:"organization,omitempty"`
	Claims       map[string]interface{} `json:"claims,omitempty"`
}

// fixedOrgTemplate: subject O comes from the provisioner's templateData, never
// from the request; CN is the (validated) token subject; SANs are the CSR's
// (validated against the token's sans).
const fixedOrgTemplate = `{
	"subject": {
		"commonName": {{ toJson .Subject.CommonName }},
		"organization": {{ toJson .organization }}
	},
	"dnsNames": {{ toJson .Insecure.CR.DNSNames }},
	"ipAddresses": {{ toJson .Insecure.CR.IPAddresses }},
	"emailAddresses": {{ toJson .Insecure.CR.EmailAddresses }},
	"uris": {{ toJson .Insecure.CR.URIs }},
	"keyUsage": ["digitalSignature", "keyEncipherment"],
	"extKeyUsage": ["serverAuth", "clientAuth"]
}`

// csrOrgTemplate: subject O/OU are copied from the CSR (kubeadm control-plane
// certificates carry various O values); CN is the token subject.
const csrOrgTemplate = `{
	"subject": {
		"commonName": {{ toJson .Subject.CommonName }},
		"organization": {{ toJson .Insecure.CR.Subject.Organization }},
		"organizationalUnit": {{ toJson .Insecure.CR.Subject.OrganizationalUnit }}
	},
	"dnsNames": {{ toJson .Insecure.CR.DNSNames }},
	"ipAddresses": {{ toJson .Insecure.CR.IPAddresses }},
	"emailAddresses": {{ toJson .Insecure.CR.EmailAddresses }},
	"uris": {{ toJson .Insecure.CR.URIs }},
	"keyUsage": ["digitalSignature", "keyEncipherment"],
	"extKeyUsage": ["serverAuth", "clientAuth"]
}`

func defaultClaims() map[string]interface{} {
	return map[string]interface{}{
		"minTLSCertDuration":      "5m",
		"maxTLSCertDuration":      "720h",
		"defaultTLSCertDuration":  "24h",
		"disableRenewal":          false,
		"allowRenewalAfterExpiry": true,
	}
}

func cmdInit(args []string) error {
	fs := flag.NewFlagSet("init", flag.ExitOnError)
	out := fs.String("out", "", "output directory (created)")
	port := fs.Int("port", 0, "TCP port on 127.0.0.1 (or give -address)")
	address := fs.String("address", "", "listen address host:port (default 127.0.0.1:PORT)")
	dns := fs.String("dns", "localhost,127.0.0.1", "comma-separated dnsNames of the CA")
	pwFile := fs.String("password-file", "", "file with the password of root.key and intermediate.key")
	specFile := fs.String("provisioners", "", "JSON file: [{name, passwordFile, organization?, claims?}]")
	name := fs.String("name", "node-join test", "CA name (root/intermediate CN prefix)")
	noIat := fs.Bool("disable-iat-check", false, "accept tokens issued before the CA started (authority.disableIssuedAtCheck)")
	_ = fs.Parse(args)

	if *out == "" || *specFile == "" {
		return fmt.Errorf("-out and -provisioners are required")
	}
	if *address == "" {
		if *port <= 0 {
			return fmt.Errorf("-port or -address is required")
		}
		*address = fmt.Sprintf("127.0.0.1:%d", *port)
	}
	caPass, err := readPassword(*pwFile)
	if err != nil {
		return fmt.Errorf("-password-file: %w", err)
	}
	specBytes, err := os.ReadFile(*specFile)
	if err != nil {
		return err
	}
	var specs []provisionerSpec
	if err := json.Unmarshal(specBytes, &specs); err != nil {
		return fmt.Errorf("parsing %s: %w", *specFile, err)
	}
	if len(specs) == 0 {
		return fmt.Errorf("%s lists no provisioner", *specFile)
	}
	if err := os.MkdirAll(filepath.Join(*out, "db"), 0o700); err != nil {
		return err
	}
	dir, err := filepath.Abs(*out)
	if err != nil {
		return err
	}

	// Root and intermediate, like pki.GenerateRootCertificate /
	// GenerateIntermediateCertificate (P-256 keys, 10 years).
	now := time.Now().Add(-time.Minute).Truncate(time.Second)
	rootKey, err := keyutil.GenerateDefaultSigner()
	if err != nil {
		return err
	}
	rootTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: *name + " Root CA", Organization: []string{*name}},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	rootCrt, err := x509util.CreateCertificate(rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return err
	}
	intKey, err := keyutil.GenerateDefaultSigner()
	if err != nil {
		return err
	}
	intTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: *name + " Intermediate CA", Organization: []string{*name}},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	intCrt, err := x509util.CreateCertificate(intTmpl, rootCrt, intKey.Public(), rootKey)
	if err != nil {
		return err
	}
	paths := map[string]string{
		"root":    filepath.Join(dir, "root.crt"),
		"rootKey": filepath.Join(dir, "root.key"),
		"int":     filepath.Join(dir, "intermediate.crt"),
		"intKey":  filepath.Join(dir, "intermediate.key"),
		"config":  filepath.Join(dir, "ca.json"),
	}
	if err := writeCert(paths["root"], rootCrt); err != nil {
		return err
	}
	if err := writeCert(paths["int"], intCrt); err != nil {
		return err
	}
	if err := writeKey(paths["rootKey"], rootKey, caPass); err != nil {
		return err
	}
	if err := writeKey(paths["intKey"], intKey, caPass); err != nil {
		return err
	}

	// JWK provisioners, like jose.GenerateDefaultKeyPair (P-256, ES256,
	// kid = thumbprint, PBES2-HS256+A128KW/A256GCM, p2c 100000, cty jwk+json).
	type summaryProv struct {
		Name string `json:"name"`
		Kid  string `json:"kid"`
	}
	var summary []summaryProv
	var provisioners []interface{}
	seen := map[string]bool{}
	for _, sp := range specs {
		if sp.Name == "" || seen[sp.Name] {
			return fmt.Errorf("provisioner names must be non-empty and unique (%q)", sp.Name)
		}
		seen[sp.Name] = true
		pass, err := readPassword(sp.PasswordFile)
		if err != nil {
			return fmt.Errorf("provisioner %s: %w", sp.Name, err)
		}
		pub, jwe, err := jose.GenerateDefaultKeyPair(pass)
		if err != nil {
			return err
		}
		encryptedKey, err := jwe.CompactSerialize()
		if err != nil {
			return err
		}
		claims := defaultClaims()
		for k, v := range sp.Claims {
			claims[k] = v
		}
		x509Opts := map[string]interface{}{}
		if sp.Organization != nil {
			org := *sp.Organization
			if org == nil {
				org = []string{}
			}
			x509Opts["template"] = fixedOrgTemplate
			x509Opts["templateData"] = map[string]interface{}{"organization": org}
		} else {
			x509Opts["template"] = csrOrgTemplate
		}
		provisioners = append(provisioners, map[string]interface{}{
			"type":         "JWK",
			"name":         sp.Name,
			"key":          pub,
			"encryptedKey": encryptedKey,
			"claims":       claims,
			"options":      map[string]interface{}{"x509": x509Opts},
		})
		summary = append(summary, summaryProv{Name: sp.Name, Kid: pub.KeyID})
	}

	var dnsNames []string
	for _, d := range strings.Split(*dns, ",") {
		if d = strings.TrimSpace(d); d != "" {
			dnsNames = append(dnsNames, d)
		}
	}
	authority := map[string]interface{}{"provisioners": provisioners}
	if *noIat {
		authority["disableIssuedAtCheck"] = true
	}
	cfg := map[string]interface{}{
		"root":     paths["root"],
		"crt":      paths["int"],
		"key":      paths["intKey"],
		"address":  *address,
		"dnsNames": dnsNames,
		"logger":   map[string]string{"format": "text"},
		"db": map[string]interface{}{
			"type":       "bbolt",
			"dataSource": filepath.Join(dir, "db", "bbolt.db"),
		},
		"authority": authority,
		"tls": map[string]interface{}{
			"cipherSuites": []string{
				"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
				"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
			},
			"minVersion":    1.2,
			"maxVersion":    1.3,
			"renegotiation": false,
		},
	}
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return err
	}
	if err := os.WriteFile(paths["config"], append(b, '\n'), 0o600); err != nil {
		return err
	}
	host := *address
	sum := sha256.Sum256(rootCrt.Raw)
	res := map[string]interface{}{
		"dir":             dir,
		"config":          paths["config"],
		"url":             "https://" + host,
		"rootFingerprint": hex.EncodeToString(sum[:]),
		"provisioners":    summary,
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

func writeCert(path string, crt *x509.Certificate) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: crt.Raw}), 0o644)
}

func writeKey(path string, key crypto.PrivateKey, pass []byte) error {
	block, err := pemutil.Serialize(key, pemutil.WithPKCS8(true), pemutil.WithPassword(pass))
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
}

// ---------------------------------------------------------------- token

type caConfig struct {
	Root      interface{} `json:"root"`
	Address   string      `json:"address"`
	Authority struct {
		Provisioners []struct {
			Type         string          `json:"type"`
			Name         string          `json:"name"`
			Key          json.RawMessage `json:"key"`
			EncryptedKey string          `json:"encryptedKey"`
		} `json:"provisioners"`
	} `json:"authority"`
}

func loadConfig(dir string) (*caConfig, *x509.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(dir, "ca.json"))
	if err != nil {
		return nil, nil, err
	}
	var cfg caConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, nil, err
	}
	rootPath, ok := cfg.Root.(string)
	if !ok {
		return nil, nil, fmt.Errorf("ca.json root is not a single path")
	}
	root, err := pemutil.ReadCertificate(rootPath)
	if err != nil {
		return nil, nil, err
	}
	return &cfg, root, nil
}

func randomID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

type tokenClaims struct {
	jose.Claims
	SANs []string `json:"sans,omitempty"`
	SHA  string   `json:"sha,omitempty"`
}

func cmdToken(args []string) error {
	fs := flag.NewFlagSet("token", flag.ExitOnError)
	dir := fs.String("dir", "", "directory made by stepinit init")
	provName := fs.String("provisioner", "", "provisioner name")
	pwFile := fs.String("password-file", "", "file with the provisioner password")
	subject := fs.String("subject", "", "token subject (the certificate CN)")
	var sans stringList
	fs.Var(&sans, "san", "a SAN (DNS name or IP), repeatable; none = step's default (the subject)")
	caURL := fs.String("ca-url", "", "CA URL (default https://<ca.json address>)")
	audience := fs.String("audience", "", "aud claim (default <ca-url>/1.0/sign)")
	ttl := fs.Duration("ttl", 5*time.Minute, "token lifetime")
	jti := fs.String("jti", "", "jti claim (default random)")
	_ = fs.Parse(args)
	if *dir == "" || *provName == "" || *subject == "" {
		return fmt.Errorf("-dir, -provisioner and -subject are required")
	}
	pass, err := readPassword(*pwFile)
	if err != nil {
		return fmt.Errorf("-password-file: %w", err)
	}
	cfg, root, err := loadConfig(*dir)
	if err != nil {
		return err
	}
	var encKey string
	for _, p := range cfg.Authority.Provisioners {
		if p.Type == "JWK" && p.Name == *provName {
			encKey = p.EncryptedKey
		}
	}
	if encKey == "" {
		return fmt.Errorf("no JWK provisioner %q in ca.json", *provName)
	}
	raw, err := jose.Decrypt([]byte(encKey), jose.WithPassword(pass))
	if err != nil {
		return fmt.Errorf("decrypting the provisioner key: %w", err)
	}
	jwk, err := jose.ParseKey(raw)
	if err != nil {
		return err
	}
	if *caURL == "" {
		*caURL = "https://" + cfg.Address
	}
	if *audience == "" {
		*audience = strings.TrimRight(*caURL, "/") + "/1.0/sign"
	}
	if *jti == "" {
		if *jti, err = randomID(); err != nil {
			return err
		}
	}
	now := time.Now()
	claims := tokenClaims{
		Claims: jose.Claims{
			ID:        *jti,
			Issuer:    *provName,
			Subject:   *subject,
			Audience:  jose.Audience{*audience},
			IssuedAt:  jose.NewNumericDate(now),
			NotBefore: jose.NewNumericDate(now),
			Expiry:    jose.NewNumericDate(now.Add(*ttl)),
		},
		SANs: sans,
		SHA:  x509util.Fingerprint(root),
	}
	so := new(jose.SignerOptions).WithType("JWT").WithHeader("kid", jwk.KeyID)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(jwk.Algorithm), Key: jwk.Key}, so)
	if err != nil {
		return err
	}
	tok, err := jose.Signed(signer).Claims(claims).CompactSerialize()
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

// ---------------------------------------------------------------- renewtoken

func cmdRenewToken(args []string) error {
	fs := flag.NewFlagSet("renewtoken", flag.ExitOnError)
	dir := fs.String("dir", "", "directory made by stepinit init")
	certFile := fs.String("cert", "", "PEM: the (possibly expired) leaf, then its intermediates")
	keyFile := fs.String("key", "", "PEM: the leaf's private key (unencrypted)")
	caURL := fs.String("ca-url", "", "CA URL (default https://<ca.json address>)")
	ttl := fs.Duration("ttl", 5*time.Minute, "token lifetime")
	_ = fs.Parse(args)
	if *dir == "" || *certFile == "" || *keyFile == "" {
		return fmt.Errorf("-dir, -cert and -key are required")
	}
	cfg, _, err := loadConfig(*dir)
	if err != nil {
		return err
	}
	chain, err := pemutil.ReadCertificateBundle(*certFile)
	if err != nil {
		return err
	}
	key, err := pemutil.Read(*keyFile)
	if err != nil {
		return err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return fmt.Errorf("%s does not hold a signing key", *keyFile)
	}
	alg := algFor(signer.Public())
	if alg == "" {
		return fmt.Errorf("unsupported key type %T", signer.Public())
	}
	var x5c []string
	for _, c := range chain {
		x5c = append(x5c, base64.StdEncoding.EncodeToString(c.Raw))
	}
	if *caURL == "" {
		*caURL = "https://" + cfg.Address
	}
	id, err := randomID()
	if err != nil {
		return err
	}
	now := time.Now()
	claims := jose.Claims{
		ID:        id,
		Issuer:    "step-ca-client/1.0",
		Subject:   chain[0].Subject.CommonName,
		Audience:  jose.Audience{strings.TrimRight(*caURL, "/") + "/1.0/renew"},
		IssuedAt:  jose.NewNumericDate(now),
		NotBefore: jose.NewNumericDate(now),
		Expiry:    jose.NewNumericDate(now.Add(*ttl)),
	}
	so := new(jose.SignerOptions).WithType("JWT").WithHeader(jose.HeaderKey(jose.X5cInsecureKey), x5c)
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signer}, so)
	if err != nil {
		return err
	}
	tok, err := jose.Signed(js).Claims(claims).CompactSerialize()
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

func algFor(pub crypto.PublicKey) jose.SignatureAlgorithm {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256
		case elliptic.P384():
			return jose.ES384
		case elliptic.P521():
			return jose.ES512
		}
	case *rsa.PublicKey:
		return jose.RS256
	case ed25519.PublicKey:
		return jose.EdDSA
	}
	return ""
}
