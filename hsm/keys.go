package hsm

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Zone PIN key names: one per ISO 8583 listener (DESIGN.md section 3).
const (
	ZoneISO2003 = "iso2003"
	ZoneISO87   = "iso87"
)

// keyFileVersion is the version of the key file's JSON layout.
const keyFileVersion = 1

// Keys is the issuer's key set, a software stand-in for an HSM: the PAN
// data-encryption and lookup keys, the card verification key (CVK), the PIN
// verification key (PVK), the zone PIN keys per ISO connection, the JWE
// server key and the internal CA that signs partner CSRs.
//
// A Keys is safe for concurrent use once loaded or generated; it must not be
// modified after its first use. Its String, GoString, Format, LogValue and
// MarshalJSON methods print key check values and public facts only, never
// key material.
type Keys struct {
	PANKey       []byte            // AES-256 key encrypting PANs at rest (32 bytes)
	PANLookupKey []byte            // HMAC-SHA-256 key of the PAN lookup hash (32 bytes)
	CVK          []byte            // CVK pair A|B, 16 bytes (double-length 3DES)
	PVK          []byte            // PVK pair A|B, 16 bytes (double-length 3DES)
	ZonePINKeys  map[string][]byte // zone PIN keys by connection name, 16 bytes each
	JWEKey       *rsa.PrivateKey   // the JWE server key (RSA 2048)
	CACert       *x509.Certificate // the internal CA's self-signed certificate
	CAKey        crypto.Signer     // the internal CA's private key (ECDSA P-256)

	c *keyCache // prepared ciphers; nil when the Keys was built by hand
}

// keyCache holds the ciphers derived from a Keys so the hot paths (CVC2,
// PIN verification, PAN decryption) skip the key schedule. cipher.Block and
// cipher.AEAD values of the standard library are safe for concurrent use.
type keyCache struct {
	panAEAD cipher.AEAD
	cvk     cipher.Block
	pvk     cipher.Block
	zones   map[string]cipher.Block
	// cvc holds the CVV key schedules per CVC generation (*cvcKeys by
	// int). Generations are small numbers read from card rows, so it stays
	// small.
	cvc sync.Map
	// lookup holds HMAC-SHA-256 states keyed with PANLookupKey
	// (hash.Hash), reset and reused: keying one costs two block hashes
	// and a few allocations per request.
	lookup sync.Pool
}

// prepare builds k's cipher cache. It is called by the constructors, before
// the Keys is shared.
func (k *Keys) prepare() error {
	c := &keyCache{zones: make(map[string]cipher.Block, len(k.ZonePINKeys))}
	var err error
	if c.panAEAD, err = newPANAEAD(k.PANKey); err != nil {
		return fmt.Errorf("pan key: %w", err)
	}
	if c.cvk, err = tdesBlock(k.CVK); err != nil {
		return fmt.Errorf("cvk: %w", err)
	}
	if c.pvk, err = tdesBlock(k.PVK); err != nil {
		return fmt.Errorf("pvk: %w", err)
	}
	for name, zk := range k.ZonePINKeys {
		b, err := tdesBlock(zk)
		if err != nil {
			return fmt.Errorf("zone pin key %q: %w", name, err)
		}
		c.zones[name] = b
	}
	lookupKey := k.PANLookupKey
	c.lookup.New = func() any { return hmac.New(sha256.New, lookupKey) }
	k.c = c
	return nil
}

// validate checks the lengths of every key, so a damaged key file fails at
// start rather than at the first authorisation.
func (k *Keys) validate() error {
	switch {
	case len(k.PANKey) != 32:
		return fmt.Errorf("pan key: %d bytes, want 32", len(k.PANKey))
	case len(k.PANLookupKey) < 32:
		return fmt.Errorf("pan lookup key: %d bytes, want at least 32", len(k.PANLookupKey))
	case len(k.CVK) != 16:
		return fmt.Errorf("cvk: %d bytes, want 16", len(k.CVK))
	case len(k.PVK) != 16:
		return fmt.Errorf("pvk: %d bytes, want 16", len(k.PVK))
	case k.JWEKey == nil:
		return errors.New("jwe key missing")
	case k.JWEKey.N.BitLen() < 2048:
		return fmt.Errorf("jwe key: %d bits, want at least 2048", k.JWEKey.N.BitLen())
	case k.CACert == nil || k.CAKey == nil:
		return errors.New("ca certificate or key missing")
	}
	for name, zk := range k.ZonePINKeys {
		if len(zk) != 16 {
			return fmt.Errorf("zone pin key %q: %d bytes, want 16", name, len(zk))
		}
	}
	return nil
}

// GenerateKeys makes a fresh development key set: random symmetric keys with
// DES odd parity where DES is used, zone PIN keys for "iso2003" and "iso87",
// an RSA-2048 JWE key and a self-signed ECDSA P-256 CA valid for ten years.
func GenerateKeys() (*Keys, error) {
	k := &Keys{
		PANKey:       randomBytes(32),
		PANLookupKey: randomBytes(32),
		CVK:          randomDESKey(16),
		PVK:          randomDESKey(16),
		ZonePINKeys: map[string][]byte{
			ZoneISO2003: randomDESKey(16),
			ZoneISO87:   randomDESKey(16),
		},
	}
	var err error
	if k.JWEKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, fmt.Errorf("generate jwe key: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ca key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, fmt.Errorf("ca serial: %w", err)
	}
	now := time.Now().UTC()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Antaca internal CA", Organization: []string{"Antaca"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("self-sign ca: %w", err)
	}
	if k.CACert, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("parse ca certificate: %w", err)
	}
	k.CAKey = caKey
	if err := k.validate(); err != nil {
		return nil, err
	}
	if err := k.prepare(); err != nil {
		return nil, err
	}
	return k, nil
}

// keyFile is the JSON layout of the key file: hex for symmetric keys, PEM
// for the RSA key and the CA.
type keyFile struct {
	Version      int               `json:"version"`
	PANKey       string            `json:"pan_key"`
	PANLookupKey string            `json:"pan_lookup_key"`
	CVK          string            `json:"cvk"`
	PVK          string            `json:"pvk"`
	ZonePINKeys  map[string]string `json:"zone_pin_keys"`
	JWEKey       string            `json:"jwe_key_pem"`
	CACert       string            `json:"ca_cert_pem"`
	CAKey        string            `json:"ca_key_pem"`
}

// LoadKeys reads the key file at path. Errors name the field at fault and
// never quote its content.
func LoadKeys(path string) (*Keys, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	var f keyFile
	if err := json.Unmarshal(raw, &f); err != nil {
		// json's syntax errors quote no content, only offsets.
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if f.Version != keyFileVersion {
		return nil, fmt.Errorf("key file %s: version %d, want %d", path, f.Version, keyFileVersion)
	}
	k := &Keys{ZonePINKeys: make(map[string][]byte, len(f.ZonePINKeys))}
	hexFields := []struct {
		name string
		src  string
		dst  *[]byte
	}{
		{"pan_key", f.PANKey, &k.PANKey},
		{"pan_lookup_key", f.PANLookupKey, &k.PANLookupKey},
		{"cvk", f.CVK, &k.CVK},
		{"pvk", f.PVK, &k.PVK},
	}
	for _, h := range hexFields {
		b, err := hex.DecodeString(h.src)
		if err != nil {
			return nil, fmt.Errorf("key file %s: %s: not hex", path, h.name)
		}
		*h.dst = b
	}
	for name, src := range f.ZonePINKeys {
		b, err := hex.DecodeString(src)
		if err != nil {
			return nil, fmt.Errorf("key file %s: zone pin key %q: not hex", path, name)
		}
		k.ZonePINKeys[name] = b
	}
	if k.JWEKey, err = parseRSAKeyPEM(f.JWEKey); err != nil {
		return nil, fmt.Errorf("key file %s: jwe key: %w", path, err)
	}
	if blk, _ := pem.Decode([]byte(f.CACert)); blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("key file %s: ca certificate: no CERTIFICATE block", path)
	} else if k.CACert, err = x509.ParseCertificate(blk.Bytes); err != nil {
		return nil, fmt.Errorf("key file %s: ca certificate: %w", path, err)
	}
	if k.CAKey, err = parseSignerPEM(f.CAKey); err != nil {
		return nil, fmt.Errorf("key file %s: ca key: %w", path, err)
	}
	if err := k.validate(); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if err := k.prepare(); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// Save writes k to path as JSON with mode 0600, through a temporary file in
// the same directory and a rename, so a crash never leaves half a key file.
func (k *Keys) Save(path string) error {
	f := keyFile{
		Version:      keyFileVersion,
		PANKey:       hex.EncodeToString(k.PANKey),
		PANLookupKey: hex.EncodeToString(k.PANLookupKey),
		CVK:          strings.ToUpper(hex.EncodeToString(k.CVK)),
		PVK:          strings.ToUpper(hex.EncodeToString(k.PVK)),
		ZonePINKeys:  make(map[string]string, len(k.ZonePINKeys)),
	}
	for name, zk := range k.ZonePINKeys {
		f.ZonePINKeys[name] = strings.ToUpper(hex.EncodeToString(zk))
	}
	if k.JWEKey == nil || k.CACert == nil || k.CAKey == nil {
		return errors.New("save keys: incomplete key set")
	}
	f.JWEKey = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.JWEKey)}))
	f.CACert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.CACert.Raw}))
	caDER, err := x509.MarshalPKCS8PrivateKey(k.CAKey)
	if err != nil {
		return fmt.Errorf("save keys: ca key: %w", err)
	}
	f.CAKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caDER}))
	raw, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("save keys: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save keys: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".keys-*.tmp")
	if err != nil {
		return fmt.Errorf("save keys: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save keys: %w", err)
	}
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save keys: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save keys: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save keys: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save keys: %w", err)
	}
	return nil
}

// LoadOrCreateKeys loads the key file at path, or, when there is none,
// generates a development set and saves it there (mode 0600). created
// reports whether a new set was made. For development only: production key
// files are made once and loaded with LoadKeys.
func LoadOrCreateKeys(path string) (k *Keys, created bool, err error) {
	k, err = LoadKeys(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if k, err = GenerateKeys(); err != nil {
		return nil, false, err
	}
	if err := k.Save(path); err != nil {
		return nil, false, err
	}
	return k, true, nil
}

// ZoneKeyNames returns the names of the zone PIN keys, sorted.
func (k *Keys) ZoneKeyNames() []string {
	names := make([]string, 0, len(k.ZonePINKeys))
	for n := range k.ZonePINKeys {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CAPool returns a pool holding the internal CA, for verifying partner
// client certificates.
func (k *Keys) CAPool() *x509.CertPool {
	p := x509.NewCertPool()
	if k.CACert != nil {
		p.AddCert(k.CACert)
	}
	return p
}

// String describes k by key check values, never by key material.
func (k Keys) String() string {
	var b strings.Builder
	b.WriteString("Keys{cvk kcv=")
	b.WriteString(KCV(k.CVK))
	b.WriteString(" pvk kcv=")
	b.WriteString(KCV(k.PVK))
	for _, n := range k.ZoneKeyNames() {
		fmt.Fprintf(&b, " zpk[%s] kcv=%s", n, KCV(k.ZonePINKeys[n]))
	}
	if k.JWEKey != nil {
		fmt.Fprintf(&b, " jwe rsa-%d", k.JWEKey.N.BitLen())
	}
	if k.CACert != nil {
		fmt.Fprintf(&b, " ca %q", k.CACert.Subject.CommonName)
	}
	b.WriteString("}")
	return b.String()
}

// GoString is String, so %#v prints no key material either.
func (k Keys) GoString() string { return k.String() }

// Format prints String for every verb (%v, %+v, %x, %s, ...).
func (k Keys) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue gives slog the key check values only.
func (k Keys) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("cvk_kcv", KCV(k.CVK)),
		slog.String("pvk_kcv", KCV(k.PVK)),
	}
	for _, n := range k.ZoneKeyNames() {
		attrs = append(attrs, slog.String("zpk_"+n+"_kcv", KCV(k.ZonePINKeys[n])))
	}
	if k.CACert != nil {
		attrs = append(attrs, slog.String("ca", k.CACert.Subject.CommonName))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON encodes the same summary as String, so a configuration dump
// never carries keys. Use Save to write the key file.
func (k Keys) MarshalJSON() ([]byte, error) { return json.Marshal(k.String()) }

// KCV returns the key check value of key: the first three bytes, in upper
// case hex, of a zero block encrypted under it (DES for 8-byte keys, 3DES
// for 16- and 24-byte keys, AES for 32-byte keys). It names a key in logs
// without revealing it; other lengths give "".
func KCV(key []byte) string {
	var blk cipher.Block
	var err error
	switch len(key) {
	case 8:
		blk, err = des.NewCipher(key)
	case 16, 24:
		blk, err = tdesBlock(key)
	case 32:
		blk, err = aes.NewCipher(key)
	default:
		return ""
	}
	if err != nil {
		return ""
	}
	zero := make([]byte, blk.BlockSize())
	out := make([]byte, blk.BlockSize())
	blk.Encrypt(out, zero)
	return strings.ToUpper(hex.EncodeToString(out[:3]))
}

// tdesBlock returns a 3DES cipher for a double-length (K1|K2, used as
// K1|K2|K1) or triple-length key.
func tdesBlock(key []byte) (cipher.Block, error) {
	switch len(key) {
	case 16:
		k := make([]byte, 24)
		copy(k, key)
		copy(k[16:], key[:8])
		return des.NewTripleDESCipher(k)
	case 24:
		return des.NewTripleDESCipher(key)
	}
	return nil, fmt.Errorf("3des key: %d bytes, want 16 or 24", len(key))
}

// fixParity sets odd parity on every byte of a DES key, in place.
func fixParity(key []byte) {
	for i, b := range key {
		b &= 0xFE
		ones := 0
		for v := b; v != 0; v >>= 1 {
			ones += int(v & 1)
		}
		if ones%2 == 0 {
			b |= 1
		}
		key[i] = b
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return b
}

func randomDESKey(n int) []byte {
	k := randomBytes(n)
	fixParity(k)
	return k
}

func parseRSAKeyPEM(s string) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	if key, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return key, nil
	}
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, errors.New("not a PKCS#1 or PKCS#8 private key")
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%T, want RSA", key)
	}
	return rk, nil
}

func parseSignerPEM(s string) (crypto.Signer, error) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	if key, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		if sg, ok := key.(crypto.Signer); ok {
			return sg, nil
		}
		return nil, fmt.Errorf("%T is not a signer", key)
	}
	if key, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
		return key, nil
	}
	if key, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return key, nil
	}
	return nil, errors.New("not a PKCS#8, EC or PKCS#1 private key")
}
