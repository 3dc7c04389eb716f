package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/antaca/antaca/api"
)

const callUsage = `usage: antaca call [flags] METHOD PATH [BODY]

Calls any route of the REST API and prints the JSON answer. BODY is JSON,
@file, or - for standard input. The channel follows the path:
  /secure/...       the partner's client certificate (-cert, -key)
  /customers/me/... a customer session (-token)
  /admin/...        an admin session (-token, or -admin name:password to log in first)
Routes whose OpenAPI entry says encryption "required" are sent as JWE
(RSA-OAEP-256, A256GCM) to the server's key from GET /public-key, with a
fresh RSA key of this call in Public-Key; encrypted answers are decrypted.
Defaults come from <data>/demo.json (written by "antaca all" and "antaca demo").

flags:
`

// callFlags are the flags of `antaca call`; every one has an environment
// variable.
type callFlags struct {
	dataDir, url, caCert, cert, key, token, admin, idem, encrypt string
	timeout                                                      time.Duration
}

func (f *callFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dataDir, "data", envOr("ANTACA_DATA", ".data"), "directory whose demo.json gives the defaults (env ANTACA_DATA)")
	fs.StringVar(&f.url, "url", os.Getenv("ANTACA_API_URL"), "API base URL (env ANTACA_API_URL); default: demo.json's api_url")
	fs.StringVar(&f.caCert, "cacert", os.Getenv("ANTACA_CA_CERT"), "PEM CA certificate the API's certificate chains to (env ANTACA_CA_CERT); default: demo.json's")
	fs.StringVar(&f.cert, "cert", os.Getenv("ANTACA_CERT"), "partner client certificate PEM for /secure (env ANTACA_CERT); default: demo.json's")
	fs.StringVar(&f.key, "key", os.Getenv("ANTACA_KEY"), "its private key PEM (env ANTACA_KEY); default: demo.json's")
	fs.StringVar(&f.token, "token", os.Getenv("ANTACA_TOKEN"), "bearer session token for /customers/me and /admin (env ANTACA_TOKEN)")
	fs.StringVar(&f.admin, "admin", os.Getenv("ANTACA_ADMIN"), "name:password: log in to /admin first (env ANTACA_ADMIN); \"demo\": demo.json's admin")
	fs.StringVar(&f.idem, "idempotency-key", os.Getenv("ANTACA_IDEMPOTENCY_KEY"), "Idempotency-Key header of a POST (env ANTACA_IDEMPOTENCY_KEY)")
	fs.StringVar(&f.encrypt, "encrypt", envOr("ANTACA_ENCRYPT", "auto"), "auto (as the route requires), always or never (env ANTACA_ENCRYPT)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "timeout of the whole call (env ANTACA_CALL_TIMEOUT)")
	if v := os.Getenv("ANTACA_CALL_TIMEOUT"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			f.timeout = d
		}
	}
}

// fillFromDemo takes what is unset from <data>/demo.json, when there.
func (f *callFlags) fillFromDemo() {
	b, err := os.ReadFile(filepath.Join(f.dataDir, "demo.json"))
	if err != nil {
		return
	}
	var d Demo
	if json.Unmarshal(b, &d) != nil {
		return
	}
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	if m := readAddresses(filepath.Join(f.dataDir, "addresses.json")); m != nil {
		set(&f.url, m["api"]) // a running process's, before demo.json's
	}
	set(&f.url, d.APIURL)
	set(&f.caCert, d.CACert)
	set(&f.cert, d.PartnerCert)
	set(&f.key, d.PartnerKey)
	if f.admin == "demo" {
		f.admin = d.AdminUser + ":" + d.AdminPassword
	}
}

func call(ctx context.Context, args []string, stdout io.Writer) error {
	var f callFlags
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), callUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 2 || fs.NArg() > 3 {
		fs.Usage()
		return errors.New("call: METHOD and PATH are required")
	}
	f.fillFromDemo()
	if f.url == "" {
		f.url = "https://localhost:8443"
	}
	method, path := strings.ToUpper(fs.Arg(0)), fs.Arg(1)
	var body []byte
	if fs.NArg() == 3 {
		var err error
		if body, err = readBody(fs.Arg(2)); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	c, err := f.client(strings.HasPrefix(path, "/secure/"))
	if err != nil {
		return err
	}
	cl := &caller{f: &f, http: c}
	if f.admin != "" && f.token == "" {
		if f.token, err = cl.login(ctx); err != nil {
			return err
		}
	}
	status, answer, err := cl.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if len(answer) > 0 && json.Indent(&out, answer, "", "  ") == nil {
		answer = out.Bytes()
	}
	fmt.Fprintf(stdout, "%s\n", answer)
	if status >= 400 {
		return fmt.Errorf("call: %s %s answered %d", method, path, status)
	}
	return nil
}

func readBody(arg string) ([]byte, error) {
	switch {
	case arg == "-":
		return io.ReadAll(os.Stdin)
	case strings.HasPrefix(arg, "@"):
		return os.ReadFile(arg[1:])
	}
	return []byte(arg), nil
}

// client trusts the CA and, for /secure, presents the partner certificate.
func (f *callFlags) client(secure bool) (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.caCert != "" {
		pem, err := os.ReadFile(f.caCert)
		if err != nil {
			return nil, fmt.Errorf("call: CA certificate: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("call: no certificate in %s", f.caCert)
		}
	}
	if secure {
		if f.cert == "" || f.key == "" {
			return nil, errors.New("call: /secure needs -cert and -key (or a demo.json)")
		}
		crt, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("call: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{crt}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

type caller struct {
	f    *callFlags
	http *http.Client
	key  *rsa.PrivateKey
}

func (c *caller) login(ctx context.Context) (string, error) {
	name, pw, ok := strings.Cut(c.f.admin, ":")
	if !ok {
		return "", errors.New("call: -admin is name:password")
	}
	b, _ := json.Marshal(map[string]string{"name": name, "password": pw})
	status, answer, err := c.send(ctx, http.MethodPost, "/admin/login", b, nil)
	if err != nil {
		return "", err
	}
	var s struct{ Token string }
	if status != http.StatusOK || json.Unmarshal(answer, &s) != nil || s.Token == "" {
		return "", fmt.Errorf("call: admin login answered %d %s", status, answer)
	}
	return s.Token, nil
}

// do sends the call, encrypted when the route requires it (or -encrypt
// always), and returns the answer, decrypted when it came encrypted.
func (c *caller) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	enc := c.f.encrypt == "always"
	if c.f.encrypt == "auto" {
		var err error
		if enc, err = c.requiresJWE(ctx, method, path); err != nil {
			return 0, nil, err
		}
	}
	hdr := http.Header{}
	if c.f.token != "" {
		hdr.Set("Authorization", "Bearer "+c.f.token)
	}
	if c.f.idem != "" {
		hdr.Set("Idempotency-Key", c.f.idem)
	}
	if enc {
		var err error
		if c.key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return 0, nil, err
		}
		der, err := x509.MarshalPKIXPublicKey(&c.key.PublicKey)
		if err != nil {
			return 0, nil, err
		}
		hdr.Set("Public-Key", base64.StdEncoding.EncodeToString(der))
		hdr.Set("Encrypted-Request", "true")
		if len(body) > 0 {
			if body, err = c.encrypt(ctx, body); err != nil {
				return 0, nil, err
			}
		}
	}
	status, answer, err := c.send(ctx, method, path, body, hdr)
	if err != nil || !enc || status < 200 || status > 299 {
		return status, answer, err
	}
	var env struct{ Payload string }
	if json.Unmarshal(answer, &env) != nil || env.Payload == "" {
		return status, answer, nil
	}
	obj, err := jose.ParseEncrypted(env.Payload, []jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.RSA_OAEP}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return status, nil, fmt.Errorf("call: answer is not a JWE: %w", err)
	}
	plain, err := obj.Decrypt(c.key)
	if err != nil {
		return status, nil, fmt.Errorf("call: answer cannot be decrypted: %w", err)
	}
	return status, plain, nil
}

// encrypt wraps body as {"payload": <compact JWE to the server's key>}.
func (c *caller) encrypt(ctx context.Context, body []byte) ([]byte, error) {
	status, doc, err := c.send(ctx, http.MethodGet, "/public-key", nil, nil)
	if err != nil {
		return nil, err
	}
	var pk struct {
		JWK jose.JSONWebKey `json:"jwk"`
	}
	if status != http.StatusOK || json.Unmarshal(doc, &pk) != nil || pk.JWK.Key == nil {
		return nil, fmt.Errorf("call: GET /public-key answered %d", status)
	}
	return api.EncryptEnvelope(body, pk.JWK.Key, pk.JWK.KeyID)
}

// requiresJWE reads the route's x-antaca-encryption in the API's own
// OpenAPI document.
func (c *caller) requiresJWE(ctx context.Context, method, path string) (bool, error) {
	status, doc, err := c.send(ctx, http.MethodGet, "/openapi.json", nil, nil)
	if err != nil {
		return false, err
	}
	var d struct {
		Paths map[string]map[string]struct {
			Encryption string `json:"x-antaca-encryption"`
		} `json:"paths"`
	}
	if status != http.StatusOK || json.Unmarshal(doc, &d) != nil {
		return false, fmt.Errorf("call: GET /openapi.json answered %d", status)
	}
	p, _, _ := strings.Cut(path, "?")
	for pattern, ops := range d.Paths {
		if op, ok := ops[strings.ToLower(method)]; ok && pathMatches(pattern, p) {
			return op.Encryption == "required", nil
		}
	}
	return false, nil
}

// pathMatches matches a path against an OpenAPI pattern with {params}.
func pathMatches(pattern, path string) bool {
	ps, xs := strings.Split(strings.Trim(pattern, "/"), "/"), strings.Split(strings.Trim(path, "/"), "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if !(strings.HasPrefix(ps[i], "{") && xs[i] != "") && ps[i] != xs[i] {
			return false
		}
	}
	return true
}

func (c *caller) send(ctx context.Context, method, path string, body []byte, hdr http.Header) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.f.url, "/")+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("call: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("call: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, b, err
}
