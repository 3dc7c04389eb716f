package loadtest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/antaca/antaca/partner"
)

// TestWebhookReceiverVerifiesAndCounts: the bench's receiver counts a
// delivery with a valid signature once per distinct event and refuses (400,
// counted bad) a wrong secret and an id header that is not the body's.
func TestWebhookReceiverVerifiesAndCounts(t *testing.T) {
	t.Setenv(receiverSecretEnv, "whsec_right")
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- WebhookReceiver(t.Context(), inR, outW) }()
	defer func() {
		inW.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var hello receiverHello
	if err := json.NewDecoder(bufio.NewReader(outR)).Decode(&hello); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(hello.Cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	post := func(id, header, secret string) int {
		body := []byte(`{"id":"` + id + `","type":"authorization.approved","created":1,"data":{}}`)
		req, _ := http.NewRequest(http.MethodPost, hello.URL+"/hooks", bytes.NewReader(body))
		req.Header.Set(partner.EventIDHeader, header)
		req.Header.Set(partner.SignatureHeader, partner.Signature(time.Now(), body, secret))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		id, header, secret string
		want               int
	}{
		{"evt_auth_1", "evt_auth_1", "whsec_right", 204},
		{"evt_auth_1", "evt_auth_1", "whsec_right", 204}, // again: not distinct
		{"evt_auth_2", "evt_auth_2", "whsec_right", 204},
		{"evt_auth_3", "evt_auth_3", "whsec_wrong", 400},
		{"evt_auth_4", "evt_auth_5", "whsec_right", 400},
	} {
		if got := post(c.id, c.header, c.secret); got != c.want {
			t.Errorf("%s signed with %s: %d, want %d", c.id, c.secret, got, c.want)
		}
	}
	resp, err := client.Get(hello.URL + "/count")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got receiverCounts
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if want := (receiverCounts{Received: 3, Distinct: 2, Bad: 2}); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
}
