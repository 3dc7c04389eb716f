package api

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/antaca/antaca/ledger"
	"github.com/jackc/pgx/v5/pgxpool"
)

// NewCA creates a self-signed internal CA (ECDSA P-256, ten years) for
// development; production loads its CA from the key file.
func NewCA(commonName string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ca key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Antaca"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("ca certificate: %w", err)
	}
	return cert, key, nil
}

// IssueServerCertificate issues a TLS server certificate for hosts (DNS
// names or IP addresses) signed by the CA, valid for validity.
func IssueServerCertificate(ca *x509.Certificate, caKey crypto.Signer, hosts []string, now time.Time, validity time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "antaca-api", Organization: []string{"Antaca"}},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// CertificateRequest asks the internal CA for a client certificate.
type CertificateRequest struct {
	Kind      string // KindPartner, KindScheme or KindAcquirer
	PartnerID int64  // KindPartner
	Entity    string // KindScheme, KindAcquirer: 1-64 of A-Z a-z 0-9 . _ -
	PublicKey crypto.PublicKey
	IssuedBy  int64 // admin user id, 0 for the system (demo)
}

// IssuedCertificate is a client certificate the CA signed and recorded.
type IssuedCertificate struct {
	Serial      string    `json:"serial"`
	Kind        string    `json:"kind"`
	PartnerID   int64     `json:"partnerId,omitempty"`
	Entity      string    `json:"entity,omitempty"`
	Subject     string    `json:"subject"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	Certificate string    `json:"certificate"`   // PEM
	CACert      string    `json:"caCertificate"` // PEM, to trust the server and chain
	cert        *x509.Certificate
}

// errUnknownPartner is returned when a certificate is asked for a partner
// that does not exist.
var errUnknownPartner = errors.New("unknown partner")

// IssueCertificate signs a client certificate for req with the internal CA
// and records it, so that /secure accepts it until it expires or is
// revoked. The identity is the URI SAN "antaca:<kind>:<partner id or
// entity>"; Subject O/OU/CN repeat it for people reading the certificate.
func (s *Server) IssueCertificate(ctx context.Context, req CertificateRequest) (*IssuedCertificate, error) {
	if err := checkClientKey(req.PublicKey); err != nil {
		return nil, err
	}
	id := certIdentity{kind: req.Kind, partnerID: req.PartnerID, entity: req.Entity}
	subject := pkix.Name{Organization: []string{"Antaca"}, OrganizationalUnit: []string{req.Kind}}
	switch req.Kind {
	case KindPartner:
		if req.PartnerID <= 0 {
			return nil, errUnknownPartner
		}
		id.entity = ""
		name, err := s.access().PartnerName(ctx, req.PartnerID)
		if errors.Is(err, ledger.ErrNotFound) {
			return nil, fmt.Errorf("issue certificate partner %d: %w", req.PartnerID, errUnknownPartner)
		}
		if err != nil {
			return nil, fmt.Errorf("issue certificate partner %d: %w", req.PartnerID, err)
		}
		subject.CommonName = "partner " + strconv.FormatInt(req.PartnerID, 10)
		subject.Organization = []string{name}
	case KindScheme, KindAcquirer:
		if !validEntity(req.Entity) {
			return nil, errors.New("issue certificate: entity must be 1-64 of A-Z a-z 0-9 . _ -")
		}
		id.partnerID = 0
		subject.CommonName = req.Kind + " " + req.Entity
	default:
		return nil, fmt.Errorf("issue certificate: unknown kind %q", req.Kind)
	}
	u, err := url.Parse(id.uri())
	if err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	now := s.cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      subject,
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(s.cfg.CertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{u},
	}
	if _, ok := req.PublicKey.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.cfg.CA, req.PublicKey, s.cfg.CAKey)
	if err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	serial := cert.SerialNumber.Text(16)
	rec := ledger.IssuedCertificate{Serial: serial, Kind: req.Kind, PartnerID: id.partnerID, Entity: id.entity,
		Subject: cert.Subject.String(), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, IssuedBy: req.IssuedBy}
	if err := s.access().RecordCertificate(ctx, rec); err != nil {
		return nil, fmt.Errorf("record certificate: %w", err)
	}
	return &IssuedCertificate{
		Serial: serial, Kind: req.Kind, PartnerID: id.partnerID, Entity: id.entity,
		Subject: cert.Subject.String(), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
		Certificate: string(CertificatePEM(cert)), CACert: string(CertificatePEM(s.cfg.CA)),
		cert: cert,
	}, nil
}

// RevokeCertificate marks a certificate revoked; /secure refuses it from
// the next request on. It returns ErrNotFound for an unknown serial.
func (s *Server) RevokeCertificate(ctx context.Context, serial string) (time.Time, error) {
	now := s.cfg.Now()
	at, err := s.access().RevokeCertificate(ctx, serial, now)
	if errors.Is(err, ledger.ErrNotFound) {
		return time.Time{}, fmt.Errorf("revoke certificate %s: %w", serial, ErrNotFound)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("revoke certificate %s: %w", serial, err)
	}
	return at, nil
}

// IssueDevClientCertificate creates a key and a recorded partner
// certificate for development (antaca demo) and returns both as PEM.
func (s *Server) IssueDevClientCertificate(ctx context.Context, partnerID int64) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("client key: %w", err)
	}
	ic, err := s.IssueCertificate(ctx, CertificateRequest{Kind: KindPartner, PartnerID: partnerID, PublicKey: &key.PublicKey})
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = PrivateKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return []byte(ic.Certificate), keyPEM, nil
}

// parseCSR reads a PEM CSR and checks its signature and key.
func parseCSR(p string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, errors.New("csr must be a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, errors.New("csr does not parse")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, errors.New("csr signature does not verify")
	}
	if err := checkClientKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return csr, nil
}

// checkClientKey accepts RSA of 2048-8192 bits, ECDSA P-256/P-384 and
// Ed25519.
func checkClientKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 8192 {
			return errors.New("rsa key must be 2048 to 8192 bits")
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return errors.New("ecdsa key must be on P-256 or P-384")
		}
	case ed25519.PublicKey:
	default:
		return errors.New("key must be RSA, ECDSA or Ed25519")
	}
	return nil
}

func randomSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}

// CertificatePEM encodes cert as PEM.
func CertificatePEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// PrivateKeyPEM encodes key as a PKCS #8 PEM.
func PrivateKeyPEM(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// DevFiles are the paths of the PEM files IssueDevCertificates writes.
type DevFiles struct {
	CACert      string `json:"ca_cert"`
	ServerCert  string `json:"server_cert"`
	ServerKey   string `json:"server_key"`
	PartnerCert string `json:"partner_cert"`
	PartnerKey  string `json:"partner_key"`
}

// IssueDevCertificates is for development (antaca demo): it writes into
// dir the CA certificate (ca.pem), a server certificate for localhost and
// 127.0.0.1 (server.pem, server-key.pem) and a recorded client certificate
// of partner partnerID (partner.pem, partner-key.pem). Keys are written
// 0600. The server certificate is only useful if the API is started with
// it; the client certificate works with any API of the same CA and
// database.
func IssueDevCertificates(ctx context.Context, pool *pgxpool.Pool, ca *x509.Certificate, caKey crypto.Signer, partnerID int64, dir string) (DevFiles, error) {
	s := &Server{pool: pool, cfg: Config{CA: ca, CAKey: caKey, CertValidity: 365 * 24 * time.Hour, Now: time.Now}}
	certPEM, keyPEM, err := s.IssueDevClientCertificate(ctx, partnerID)
	if err != nil {
		return DevFiles{}, err
	}
	srv, err := IssueServerCertificate(ca, caKey, []string{"localhost", "127.0.0.1", "::1"}, time.Now(), 365*24*time.Hour)
	if err != nil {
		return DevFiles{}, err
	}
	srvKey, err := PrivateKeyPEM(srv.PrivateKey)
	if err != nil {
		return DevFiles{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return DevFiles{}, fmt.Errorf("dev certificates: %w", err)
	}
	f := DevFiles{
		CACert:      filepath.Join(dir, "ca.pem"),
		ServerCert:  filepath.Join(dir, "server.pem"),
		ServerKey:   filepath.Join(dir, "server-key.pem"),
		PartnerCert: filepath.Join(dir, "partner.pem"),
		PartnerKey:  filepath.Join(dir, "partner-key.pem"),
	}
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{f.CACert, CertificatePEM(ca), 0o644},
		{f.ServerCert, CertificatePEM(srv.Leaf), 0o644},
		{f.ServerKey, srvKey, 0o600},
		{f.PartnerCert, certPEM, 0o644},
		{f.PartnerKey, keyPEM, 0o600},
	} {
		if err := os.WriteFile(w.path, w.data, w.mode); err != nil {
			return DevFiles{}, fmt.Errorf("dev certificates: %w", err)
		}
	}
	return f, nil
}
