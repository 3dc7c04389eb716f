package api

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzDecryptPayload feeds the JWE envelope decoder outside bytes: it must
// answer with one of the JWE error codes or a plaintext, never panic.
func FuzzDecryptPayload(f *testing.F) {
	sk, _ := testKeys(f)
	kid, err := keyID(&sk.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	for _, alg := range []jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.RSA_OAEP} {
		f.Add(envelope(encryptTo(f, &sk.PublicKey, alg, jose.A256GCM, []byte(`{"cardNo":"5555444455554444"}`), nil)))
	}
	f.Add([]byte(`{"payload":"a.b.c.d.e"}`))
	f.Add([]byte(`{"payload":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		plain, e := decryptPayload(body, sk, kid)
		if e == nil && plain == nil {
			t.Fatal("no error and no plaintext")
		}
		if e != nil {
			switch e.Code {
			case CodeInvalidPayload, CodeCantDecryptPayload:
			default:
				t.Fatalf("code %s, want a JWE error code", e.Code)
			}
		}
	})
}

// FuzzPublicKeyHeader: the Public-Key header parser never panics and only
// returns RSA keys of the allowed sizes.
func FuzzPublicKeyHeader(f *testing.F) {
	_, ck := testKeys(f)
	f.Add(pubHeader(f, &ck.PublicKey))
	f.Add(base64.StdEncoding.EncodeToString([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")))
	f.Add("")
	f.Add("***")
	f.Fuzz(func(t *testing.T, v string) {
		k, e := parsePublicKeyHeader(v)
		if e == nil {
			if n := k.N.BitLen(); n < minClientKeyBits || n > maxClientKeyBits {
				t.Fatalf("accepted a %d-bit key", n)
			}
		} else if e.Code != CodeInvalidPublicKey {
			t.Fatalf("code %s, want INVALID_PUBLIC_KEY", e.Code)
		}
	})
}

// FuzzDecodeJSON: strict body decoding never panics, answers 400 with
// INVALID_JSON or VALIDATION_ERROR, and what it accepts survives a round
// trip.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"name":"a","password":"p","role":"Admin"}`))
	f.Add([]byte(`{"name":1}`))
	f.Add([]byte(`{"name":"a"} {}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	type body struct {
		Name     string   `json:"name"`
		Password string   `json:"password"`
		Role     Role     `json:"role"`
		Amount   int64    `json:"amount"`
		Tags     []string `json:"tags"`
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v body
		err := decodeJSON(b, &v)
		if err != nil {
			e, ok := err.(*Error)
			if !ok || e.Status != 400 || (e.Code != CodeInvalidJSON && e.Code != CodeValidation) {
				t.Fatalf("error %v, want 400 INVALID_JSON or VALIDATION_ERROR", err)
			}
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var w body
		if err := decodeJSON(again, &w); err != nil {
			t.Fatalf("re-decode %s: %v", again, err)
		}
		if !reflect.DeepEqual(v, w) {
			t.Fatalf("round trip %+v != %+v", v, w)
		}
	})
}

// BenchmarkJWERoundTrip measures the server's share of one encrypted
// request: decrypting a request (RSA-OAEP-256 unwrap, A256GCM) and
// encrypting the answer to the client's key.
func BenchmarkJWERoundTrip(b *testing.B) {
	sk, ck := testKeys(b)
	kid, _ := keyID(&sk.PublicKey)
	body := envelope(encryptTo(b, &sk.PublicKey, jose.RSA_OAEP_256, jose.A256GCM, []byte(`{"cardNo":"5555444455554444","exp":"2030-01"}`), nil))
	b.ReportAllocs()
	for b.Loop() {
		plain, e := decryptPayload(body, sk, kid)
		if e != nil {
			b.Fatal(e)
		}
		if _, err := encryptPayload(plain, &ck.PublicKey); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPasswordHash is the cost of one admin login (PBKDF2-SHA-256,
// 600,000 iterations).
func BenchmarkPasswordHash(b *testing.B) {
	h, _ := hashPassword("correct horse battery", 600_000)
	for b.Loop() {
		checkPassword(h, "correct horse battery")
	}
}
