package partner

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the signature of every call out; EventIDHeader
// the id of a webhook's event.
const (
	SignatureHeader = "Antaca-Signature"
	EventIDHeader   = "Antaca-Event-Id"
)

// Signature is the Antaca-Signature value of body sent at t: "t=<unix
// seconds>" then one "v1=<hex HMAC-SHA256 of "<t>.<body>">" per secret
// (two while a secret is being rotated: the new one first).
func Signature(t time.Time, body []byte, secrets ...string) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, s := range secrets {
		if s == "" {
			continue
		}
		b.WriteString(",v1=" + sign(s, ts, body))
	}
	return b.String()
}

func sign(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrNoSignature  = errors.New("no valid signature")
	ErrSignatureOld = errors.New("signature timestamp outside the tolerance")
)

// Verify checks header (an Antaca-Signature value) for body with secret:
// one of its v1 values must match and its t must be within tolerance of
// now (replays of an old message are refused). It is what a partner's
// receiver does; the tests and `antaca call` use it too.
func Verify(header string, body []byte, secret string, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
		case k == "t":
			ts = v
		case k == "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrNoSignature
	}
	want := sign(secret, ts, body)
	found := false
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			found = true
		}
	}
	if !found {
		return ErrNoSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); tolerance > 0 && (d > tolerance || d < -tolerance) {
		return ErrSignatureOld
	}
	return nil
}
