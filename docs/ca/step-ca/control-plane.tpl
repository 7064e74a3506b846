{
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
}
