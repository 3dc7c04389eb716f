package hsm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	genOnce sync.Once
	genKeys *Keys
	genErr  error
)

// generated returns one generated key set per test binary (RSA-2048
// generation is slow).
func generated(t *testing.T) *Keys {
	t.Helper()
	genOnce.Do(func() { genKeys, genErr = GenerateKeys() })
	if genErr != nil {
		t.Fatal(genErr)
	}
	return genKeys
}

func TestKCV(t *testing.T) {
	for _, tt := range []struct{ key, want string }{
		// The check values printed for these textbook test keys in HSM
		// manuals and key calculators (e.g. EFTlab BP-Tools).
		{"0123456789ABCDEF", "D5D44F"},
		{"0123456789ABCDEFFEDCBA9876543210", "08D7B4"},
	} {
		if got := KCV(mustHex(t, tt.key)); got != tt.want {
			t.Errorf("KCV(%d-byte key): got %s, want %s", len(tt.key)/2, got, tt.want)
		}
	}
	if got := KCV(make([]byte, 32)); len(got) != 6 {
		t.Errorf("AES-256 key: got %q, want 6 hex digits", got)
	}
	if got := KCV(make([]byte, 5)); got != "" {
		t.Errorf("5-byte key: got %q, want empty", got)
	}
}

func TestGenerateKeys(t *testing.T) {
	k := generated(t)
	if len(k.PANKey) != 32 || len(k.PANLookupKey) != 32 || len(k.CVK) != 16 || len(k.PVK) != 16 {
		t.Fatalf("key lengths %d %d %d %d", len(k.PANKey), len(k.PANLookupKey), len(k.CVK), len(k.PVK))
	}
	for _, name := range []string{ZoneISO2003, ZoneISO87} {
		if len(k.ZonePINKeys[name]) != 16 {
			t.Errorf("zone key %s: %d bytes, want 16", name, len(k.ZonePINKeys[name]))
		}
	}
	if bytes.Equal(k.CVK[:8], k.CVK[8:]) || bytes.Equal(k.PVK, k.CVK) {
		t.Error("degenerate 3DES keys")
	}
	if k.JWEKey.N.BitLen() != 2048 {
		t.Errorf("jwe key: %d bits", k.JWEKey.N.BitLen())
	}
	if !k.CACert.IsCA {
		t.Error("ca certificate is not a CA")
	}
	if _, ok := k.CAKey.Public().(*ecdsa.PublicKey); !ok {
		t.Errorf("ca key %T, want ECDSA", k.CAKey.Public())
	}
	if _, err := k.CACert.Verify(x509.VerifyOptions{Roots: k.CAPool(), CurrentTime: time.Now()}); err != nil {
		t.Errorf("ca does not verify against its own pool: %v", err)
	}
	other, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.CVK, k.CVK) || bytes.Equal(other.PANKey, k.PANKey) {
		t.Error("two generated sets share keys")
	}
}

func TestKeysSaveLoad(t *testing.T) {
	k := generated(t)
	path := filepath.Join(t.TempDir(), "sub", "keys.json")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	got, err := LoadKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		a, b []byte
	}{
		{"pan key", k.PANKey, got.PANKey},
		{"lookup key", k.PANLookupKey, got.PANLookupKey},
		{"cvk", k.CVK, got.CVK},
		{"pvk", k.PVK, got.PVK},
		{"zpk iso2003", k.ZonePINKeys[ZoneISO2003], got.ZonePINKeys[ZoneISO2003]},
		{"zpk iso87", k.ZonePINKeys[ZoneISO87], got.ZonePINKeys[ZoneISO87]},
		{"ca cert", k.CACert.Raw, got.CACert.Raw},
	} {
		if !bytes.Equal(c.a, c.b) {
			t.Errorf("%s differs after load", c.name)
		}
	}
	if !k.JWEKey.Equal(got.JWEKey) {
		t.Error("jwe key differs after load")
	}
	if !got.CAKey.Public().(*ecdsa.PublicKey).Equal(k.CAKey.Public()) {
		t.Error("ca key differs after load")
	}
	// What one set encrypted, the loaded set decrypts.
	enc, err := k.EncryptPAN("4111111111111111")
	if err != nil {
		t.Fatal(err)
	}
	if pan, err := got.DecryptPAN(enc); err != nil || pan != "4111111111111111" {
		t.Errorf("decrypt with loaded keys: %v", err)
	}
}

func TestLoadOrCreateKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	a, created, err := LoadOrCreateKeys(path)
	if err != nil || !created {
		t.Fatalf("first call: created %v, err %v", created, err)
	}
	b, created, err := LoadOrCreateKeys(path)
	if err != nil || created {
		t.Fatalf("second call: created %v, err %v", created, err)
	}
	if !bytes.Equal(a.CVK, b.CVK) {
		t.Error("second call made new keys")
	}
	// A damaged file is an error, never silently replaced.
	if err := os.WriteFile(path, []byte(`{"version":1,"cvk":"zz"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKeys(path); err == nil {
		t.Error("damaged file: got no error")
	}
}

func TestLoadKeysErrors(t *testing.T) {
	k := generated(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := k.Save(good); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(good)
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	secret := strings.ToUpper(hex.EncodeToString(k.CVK))
	for _, tt := range []struct {
		name  string
		field string
		value any
	}{
		{"short cvk", "cvk", secret[:30]},
		{"cvk not hex", "cvk", "G" + secret[1:]},
		{"short pan key", "pan_key", "00"},
		{"no jwe key", "jwe_key_pem", ""},
		{"no ca", "ca_cert_pem", "junk"},
		{"version 2", "version", 2},
		{"short zone key", "zone_pin_keys", map[string]string{"iso2003": secret[:16]}},
	} {
		d := map[string]any{}
		for k, v := range doc {
			d[k] = v
		}
		d[tt.field] = tt.value
		b, _ := json.Marshal(d)
		p := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKeys(p)
		if err == nil {
			t.Errorf("%s: got no error", tt.name)
			continue
		}
		if strings.Contains(strings.ToUpper(err.Error()), secret[:16]) {
			t.Errorf("%s: error quotes key material", tt.name)
		}
	}
}

// keyHexes returns every secret of k as upper and lower case hex, to look
// for in printed output.
func keyHexes(k *Keys) []string {
	secrets := [][]byte{k.PANKey, k.PANLookupKey, k.CVK, k.PVK, k.CVK[:8], k.CVK[8:], k.PVK[:8], k.PVK[8:]}
	for _, zk := range k.ZonePINKeys {
		secrets = append(secrets, zk, zk[:8], zk[8:])
	}
	var out []string
	for _, s := range secrets {
		h := hex.EncodeToString(s)
		out = append(out, h, strings.ToUpper(h))
	}
	d := k.JWEKey.D
	out = append(out, d.String(), d.Text(16), fmt.Sprintf("%x", d.Bytes()[:8]))
	if ek, ok := k.CAKey.(*ecdsa.PrivateKey); ok {
		b, _ := ek.Bytes()
		out = append(out, hex.EncodeToString(b), new(big.Int).SetBytes(b).String())
	}
	return out
}

func TestKeysNeverPrinted(t *testing.T) {
	k := generated(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("keys loaded", "keys", k)
	log.Info("keys loaded", "keys", *k)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("keys loaded", "keys", k)
	js, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, _ := json.Marshal(struct{ Keys *Keys }{k})
	printed := strings.Join([]string{
		fmt.Sprint(k), fmt.Sprint(*k),
		fmt.Sprintf("%v %+v %#v %s %x %X %q", k, k, k, k, k, k, k),
		fmt.Sprintf("%v %+v %#v %s %x %X %q", *k, *k, *k, *k, *k, *k, *k),
		k.String(), logs.String(), string(js), string(wrapped),
	}, "\n")
	for _, s := range keyHexes(k) {
		if strings.Contains(printed, s) {
			t.Fatalf("printed output contains key material (%d characters)", len(s))
		}
	}
	if !strings.Contains(printed, KCV(k.CVK)) {
		t.Errorf("printed output lacks the CVK's check value: %s", k.String())
	}
}
