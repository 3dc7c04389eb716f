package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/antaca/antaca/api"
	"github.com/antaca/antaca/hsm"
)

// TestAPICertificate: the internal CA's certificate covers -api-hosts (names
// and addresses) and verifies against the CA; -tls-cert/-tls-key replace
// it; a missing key file is an error, not a silent fallback.
func TestAPICertificate(t *testing.T) {
	keys, err := hsm.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f := serveFlags{apiHosts: " api.partner-facing.example , 10.1.2.3,localhost"}
	c, err := f.apiCertificate(keys, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf
	if !slices.Contains(leaf.DNSNames, "api.partner-facing.example") || !slices.Contains(leaf.DNSNames, "localhost") ||
		len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "10.1.2.3" {
		t.Fatalf("certificate covers %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	roots := x509.NewCertPool()
	roots.AddCert(keys.CACert)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "api.partner-facing.example", Roots: roots, CurrentTime: now}); err != nil {
		t.Fatalf("verify against the internal CA: %v", err)
	}
	if _, err := (&serveFlags{apiHosts: " , "}).apiCertificate(keys, now); err == nil {
		t.Error("no hosts: got a certificate")
	}

	// A certificate of one's own, as PEM files.
	own, err := api.IssueServerCertificate(keys.CACert, keys.CAKey, []string{"own.example"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(own.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	var chain []byte
	for _, der := range own.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	os.WriteFile(certFile, chain, 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	got, err := (&serveFlags{tlsCert: certFile, tlsKey: keyFile, apiHosts: "localhost"}).apiCertificate(keys, now)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, err := x509.ParseCertificate(got.Certificate[0]); err != nil || !slices.Contains(leaf.DNSNames, "own.example") {
		t.Fatalf("loaded certificate: %v %v", leaf, err)
	}
	if _, err := (&serveFlags{tlsCert: certFile, tlsKey: filepath.Join(dir, "missing.pem")}).apiCertificate(keys, now); err == nil {
		t.Error("missing key file: got a certificate")
	}
}
