package authswitch

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"
)

// TestE2EBadRequestInBurst: a request whose DE43 holds a NUL byte, sent
// in a burst of valid ones on the same connection and another, is
// answered format error (echoing DE11, DE37, DE41) while every valid one
// is approved: one request never fails another.
func TestE2EBadRequestInBurst(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 1_000_000)
		other := e.dial()
		const each = 20
		type sent struct {
			c   *connection.Connection
			req *iso8583.Message
			bad bool
		}
		var all []sent
		for i := range 2 * each {
			c := e.c
			if i%2 == 1 {
				c = other
			}
			all = append(all, sent{c: c, req: e.msg("100", card, 100, nil)})
		}
		bad := e.msg("100", card, 100, map[int]string{43: strings.Replace("ACME STORE               PARIS        FR", " ", "\x00", 1)})
		all = append(all[:each], append([]sent{{c: e.c, req: bad, bad: true}}, all[each:]...)...)
		var wg sync.WaitGroup
		for _, s := range all {
			wg.Go(func() {
				resp, err := s.c.Send(s.req)
				if err != nil {
					t.Errorf("send: %v", err)
					return
				}
				want := cardhost.Approved
				if s.bad {
					want = cardhost.FormatError
					for _, n := range []int{11, 37, 41} {
						if get(t, resp, n) != get(t, s.req, n) {
							t.Errorf("format error: DE%d not echoed", n)
						}
					}
				}
				if got := get(t, resp, 39); got != actionCode(t, e.profile, want) {
					t.Errorf("STAN %s (bad %v): DE39 %s, want %s", get(t, s.req, 11), s.bad, got, actionCode(t, e.profile, want))
				}
			})
		}
		wg.Wait()
		e.expectBalance(card.AccountID, 1_000_000, 2*each*100)
		if n := e.count(`SELECT count(*) FROM auth_journal WHERE stan = $1`, get(t, bad, 11)); n != 0 {
			t.Errorf("journal: %d rows of the bad request, want none", n)
		}
	})
}

// TestTrailingBytesRefused: 13 bytes after the last field make a request
// a format error (the issuer never sees it) that echoes what a QMUX-style
// client matches by: DE11 and DE41, with DE2, DE7, DE32, DE37, DE42.
func TestTrailingBytesRefused(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			a := newTestAuthorizer()
			_, addr := startServer(t, profile, a, nil)
			nc := plainDial(t, addr)
			req := request(t, profile, "100", 31, panApproved, 100, nil)
			nc.Write(rawFrame(append(mustPack(t, req), "0123456789abc"...)))
			resp, err := readAnswer(t, nc, profile)
			if err != nil {
				t.Fatal(err)
			}
			if got := get(t, resp, 39); got != actionCode(t, profile, cardhost.FormatError) {
				t.Errorf("DE39 %s, want format error", got)
			}
			for _, n := range []int{2, 7, 11, 32, 37, 41, 42} {
				if get(t, resp, n) != get(t, req, n) {
					t.Errorf("DE%d: got %q, want %q", n, get(t, resp, n), get(t, req, n))
				}
			}
			if len(a.requests()) != 0 {
				t.Errorf("the issuer saw the request")
			}
		})
	}
}

// qmuxKey matches answers as jPOS's QMUX does by default: DE41 + DE11.
type qmuxKey struct{}

func (qmuxKey) GenerateRequestID(m *iso8583.Message) (string, error) {
	tid, err := m.GetString(41)
	if err != nil {
		return "", err
	}
	stan, err := m.GetString(11)
	if err != nil {
		return "", err
	}
	return tid + "/" + stan, nil
}

// TestFormatErrorMatchedByQMUXKey: a client that matches answers by DE41
// and DE11 gets its format-error answers (a NUL in DE43), as well as its
// approvals, on one connection.
func TestFormatErrorMatchedByQMUXKey(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			_, addr := startServer(t, profile, newTestAuthorizer(), nil)
			c := dial(t, addr, profile, connection.SetRequestIDGenerator(qmuxKey{}), connection.SendTimeout(3*time.Second))
			bad := request(t, profile, "100", 41, panApproved, 100, map[int]string{43: strings.Replace("ACME STORE               PARIS        FR", " ", "\x00", 1)})
			resp, err := c.Send(bad)
			if err != nil {
				t.Fatalf("format error answer not matched by DE41+DE11: %v", err)
			}
			if got := get(t, resp, 39); got != actionCode(t, profile, cardhost.FormatError) {
				t.Errorf("DE39 %s, want format error", got)
			}
			resp, err = c.Send(request(t, profile, "100", 42, panApproved, 100, nil))
			if err != nil || get(t, resp, 39) != actionCode(t, profile, cardhost.Approved) {
				t.Errorf("next request: %v", err)
			}
		})
	}
}
