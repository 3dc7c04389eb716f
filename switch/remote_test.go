package authswitch

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/partner"
)

// TestE2ERemoteDecisionForged: an answer that is not the partner's signed
// approval of this very request cannot approve, even with a stand-in that
// approves: unsigned, signed with another secret, echoing another request
// id, a redirect to an approving origin, an http:// URL, a partner on a
// refused address. Each is declined 1000/05 (05) and holds nothing; a
// genuine signed approval is approved, and the partner checked our
// signature.
func TestE2ERemoteDecisionForged(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		answer := func(sign string, echo func(id string) string) string {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id, _, err := partner.ReadDecision(r, remoteSecret)
				if err != nil {
					t.Errorf("our request's signature does not verify: %v", err)
				}
				body, _ := json.Marshal(map[string]any{"id": echo(id), "approve": true})
				if sign != "" {
					w.Header().Set(partner.SignatureHeader, partner.Signature(time.Now(), body, sign))
				}
				w.Write(body)
			}))
			t.Cleanup(srv.Close)
			return srv.URL
		}
		same := func(id string) string { return id }
		var stolen atomic.Int32
		approving := partnerRemote(t, true, 0)
		thief := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			stolen.Add(1)
			id, _, _ := partner.ReadDecision(r, remoteSecret)
			partner.WriteDecision(w, remoteSecret, id, true)
		}))
		t.Cleanup(thief.Close)
		redirect := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, thief.URL, http.StatusTemporaryRedirect)
		}))
		t.Cleanup(redirect.Close)
		plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, _, _ := partner.ReadDecision(r, remoteSecret)
			partner.WriteDecision(w, remoteSecret, id, true)
		}))
		t.Cleanup(plain.Close)

		for _, tc := range []struct {
			name string
			url  string
			host *cardhost.Host
			want cardhost.Reason
		}{
			{"genuine signed approval", approving, nil, cardhost.Approved},
			{"unsigned approval", answer("", same), nil, cardhost.DoNotHonour},
			{"approval signed with another secret", answer("rdsec_other", same), nil, cardhost.DoNotHonour},
			{"signed approval of another request id", answer(remoteSecret, func(string) string { return "dec_other" }), nil, cardhost.DoNotHonour},
			{"307 to an approving origin", redirect.URL, nil, cardhost.DoNotHonour},
			{"http:// URL", plain.URL, nil, cardhost.DoNotHonour},
			{"production client: partner on 127.0.0.1", approving,
				cardhost.NewHost(e.pool, e.led, e.keys, cardhost.Config{Remote: partner.NewDecider(partner.NewClient(partner.Config{}))}), cardhost.DoNotHonour},
		} {
			t.Run(tc.name, func(t *testing.T) {
				prog := e.program(cardhost.ProgramSpec{Funding: cardhost.FundingPartnerDeposit, RemoteURL: tc.url,
					RemoteTimeout: 2 * time.Second, StandInApprove: true}, 100_000)
				card := e.virtualCard(prog, 0)
				c := e.c
				if tc.host != nil {
					t.Cleanup(tc.host.Close)
					c = dial(t, e.serve(tc.host, nil), e.profile)
				}
				resp := sendOn(t, c, e.msg("100", card, 1_000, nil))
				e.expect(resp, tc.want)
				held := int64(0)
				if tc.want == cardhost.Approved {
					held = 1_000
				}
				e.expectBalance(prog.PartnerAccountID, 100_000, held)
				if n := e.count(`SELECT count(*) FROM auth_journal WHERE card_id = $1 AND reason = $2`, card.ID, string(tc.want)); n != 1 {
					t.Errorf("journal rows of the card with reason %s: got %d, want 1", tc.want, n)
				}
			})
		}
		if stolen.Load() != 0 {
			t.Fatalf("the redirect's target was asked %d times, want 0", stolen.Load())
		}
	})
}
