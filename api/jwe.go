package api

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Encryption says how a route treats JWE (DESIGN.md section 8).
type Encryption int

const (
	// EncryptionNone routes ignore the JWE headers: public documents.
	EncryptionNone Encryption = iota
	// EncryptionOptional routes take a plain or an encrypted request; an
	// encrypted request gets an encrypted success answer.
	EncryptionOptional
	// EncryptionRequired routes refuse a plain request (ENCRYPTION_REQUIRED)
	// and always encrypt a success answer other than 204.
	EncryptionRequired
)

func (e Encryption) String() string {
	switch e {
	case EncryptionOptional:
		return "optional"
	case EncryptionRequired:
		return "required"
	}
	return "none"
}

// Limits of what a client may send in the JWE headers and envelope.
const (
	maxPublicKeyHeader  = 8192 // base64 of a PEM of an 8192-bit key fits
	maxProtectedHeader  = 1024 // decoded JWE protected header, bytes
	minClientKeyBits    = 2048
	maxClientKeyBits    = 8192
	headerPublicKey     = "Public-Key"
	headerEncrypted     = "Encrypted-Request"
	headerIdempotency   = "Idempotency-Key"
	maxIdempotencyKey   = 255
	responseKeyAlg      = jose.RSA_OAEP_256
	responseContentAlg  = jose.A256GCM
	responseContentType = "JSON"
)

var (
	requestKeyAlgs     = []jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.RSA_OAEP}
	requestContentAlgs = []jose.ContentEncryption{jose.A256GCM}
)

func jweError(code, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: msg}
}

// parsePublicKeyHeader reads the client's RSA public key from the
// Public-Key header: standard base64 of the DER SubjectPublicKeyInfo (a PEM
// body on one line), or base64 of the whole PEM text. PKCS #1 "RSA PUBLIC
// KEY" is accepted too.
func parsePublicKeyHeader(v string) (*rsa.PublicKey, *Error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, jweError(CodeInvalidPublicKey, "Public-Key header is empty")
	}
	if len(v) > maxPublicKeyHeader {
		return nil, jweError(CodeInvalidPublicKey, "Public-Key header too long")
	}
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(v); err != nil {
			return nil, jweError(CodeInvalidPublicKey, "Public-Key is not standard base64")
		}
	}
	der := raw
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("-----BEGIN")) {
		block, _ := pem.Decode(bytes.TrimSpace(raw))
		if block == nil {
			return nil, jweError(CodeInvalidPublicKey, "Public-Key PEM does not parse")
		}
		der = block.Bytes
	}
	var pub any
	if pub, err = x509.ParsePKIXPublicKey(der); err != nil {
		k, err1 := x509.ParsePKCS1PublicKey(der)
		if err1 != nil {
			return nil, jweError(CodeInvalidPublicKey, "Public-Key is not a DER SubjectPublicKeyInfo")
		}
		pub = k
	}
	rk, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, jweError(CodeInvalidPublicKey, "Public-Key must be an RSA key")
	}
	if n := rk.N.BitLen(); n < minClientKeyBits || n > maxClientKeyBits {
		return nil, jweError(CodeInvalidPublicKey, "Public-Key must be an RSA key of 2048 to 8192 bits")
	}
	return rk, nil
}

// decodeEnvelope reads {"payload": "<compact JWE>"} and returns the compact
// JWE. Anything else is INVALID_PAYLOAD.
func decodeEnvelope(body []byte) (string, *Error) {
	var env struct {
		Payload *string `json:"payload"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || dec.More() || env.Payload == nil {
		return "", jweError(CodeInvalidPayload, `body must be {"payload": "<compact JWE>"}`)
	}
	if *env.Payload == "" {
		return "", jweError(CodeInvalidPayload, "payload is empty")
	}
	return *env.Payload, nil
}

// parseCompact checks the protected header of a compact JWE before handing
// it to go-jose: at most 1 KiB, alg RSA-OAEP-256 or RSA-OAEP, enc A256GCM,
// no compression and no critical extensions. It refuses "none", "dir",
// symmetric and password-based algorithms by the allow-list.
func parseCompact(compact string) (*jose.JSONWebEncryption, *Error) {
	if strings.Count(compact, ".") != 4 {
		return nil, jweError(CodeInvalidPayload, "payload is not a compact JWE (five parts)")
	}
	first, _, _ := strings.Cut(compact, ".")
	if base64.RawURLEncoding.DecodedLen(len(first)) > maxProtectedHeader {
		return nil, jweError(CodeInvalidPayload, "JWE protected header too large")
	}
	hb, err := base64.RawURLEncoding.DecodeString(first)
	if err != nil {
		return nil, jweError(CodeInvalidPayload, "JWE protected header is not base64url")
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, jweError(CodeInvalidPayload, "JWE protected header is not a JSON object")
	}
	var alg, enc string
	json.Unmarshal(h["alg"], &alg)
	json.Unmarshal(h["enc"], &enc)
	if alg != string(jose.RSA_OAEP_256) && alg != string(jose.RSA_OAEP) {
		return nil, jweError(CodeInvalidPayload, "JWE alg must be RSA-OAEP-256 or RSA-OAEP")
	}
	if enc != string(jose.A256GCM) {
		return nil, jweError(CodeInvalidPayload, "JWE enc must be A256GCM")
	}
	if _, ok := h["zip"]; ok {
		return nil, jweError(CodeInvalidPayload, "JWE compression is not accepted")
	}
	if _, ok := h["crit"]; ok {
		return nil, jweError(CodeInvalidPayload, "JWE critical header parameters are not accepted")
	}
	obj, err := jose.ParseEncryptedCompact(compact, requestKeyAlgs, requestContentAlgs)
	if err != nil {
		return nil, jweError(CodeInvalidPayload, "payload is not a valid compact JWE")
	}
	return obj, nil
}

// decryptPayload turns an encrypted request body into its plaintext JSON.
func decryptPayload(body []byte, key *rsa.PrivateKey, kid string) ([]byte, *Error) {
	compact, e := decodeEnvelope(body)
	if e != nil {
		return nil, e
	}
	obj, e := parseCompact(compact)
	if e != nil {
		return nil, e
	}
	if obj.Header.KeyID != "" && obj.Header.KeyID != kid {
		return nil, jweError(CodeCantDecryptPayload, "JWE kid is not the server key's (see GET /public-key)")
	}
	plain, err := obj.Decrypt(key)
	if err != nil {
		return nil, jweError(CodeCantDecryptPayload, "payload cannot be decrypted with the server key")
	}
	return plain, nil
}

// encryptPayload encrypts plain to the client's key as the reference
// document says (RSA-OAEP-256, A256GCM) and returns the {"payload": …} body.
func encryptPayload(plain []byte, pub *rsa.PublicKey) ([]byte, error) {
	return EncryptEnvelope(plain, pub, "")
}

// EncryptEnvelope encrypts plain to key (an RSA public key or JWK key) with
// RSA-OAEP-256 and A256GCM, naming kid when set, and returns the
// {"payload": "<compact JWE>"} body: an encrypted answer, or a client's
// encrypted request (antaca call).
func EncryptEnvelope(plain []byte, key any, kid string) ([]byte, error) {
	enc, err := jose.NewEncrypter(responseContentAlg,
		jose.Recipient{Algorithm: responseKeyAlg, Key: key, KeyID: kid},
		(&jose.EncrypterOptions{}).WithContentType(responseContentType))
	if err != nil {
		return nil, err
	}
	obj, err := enc.Encrypt(plain)
	if err != nil {
		return nil, err
	}
	compact, err := obj.CompactSerialize()
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{"payload": compact})
}

// keyID is the RFC 7638 SHA-256 thumbprint of pub, base64url.
func keyID(pub *rsa.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// publicKeyDocument is the body of GET /public-key.
type publicKeyDocument struct {
	KeyID string          `json:"kid"`
	Alg   string          `json:"alg"`
	Enc   string          `json:"enc"`
	JWK   json.RawMessage `json:"jwk"`
	PEM   string          `json:"pem"`
}

func newPublicKeyDocument(key *rsa.PrivateKey, kid string) ([]byte, error) {
	jwk := jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.RSA_OAEP_256), Use: "enc"}
	jb, err := jwk.MarshalJSON()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return json.Marshal(publicKeyDocument{
		KeyID: kid,
		Alg:   string(jose.RSA_OAEP_256),
		Enc:   string(jose.A256GCM),
		JWK:   jb,
		PEM:   string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	})
}
