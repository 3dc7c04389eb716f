package partner

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/antaca/antaca/ledger"
)

// TestJournalBodyAsDocumented: a journal event's data has the documented
// keys, in the order of their names, the optional ones only when set (as
// the map encoding it replaced wrote them).
func TestJournalBodyAsDocumented(t *testing.T) {
	avail := int64(98766)
	full := ledger.JournalEventRow{ID: 17, CreatedAt: time.Unix(1765000300, 0), Class: 1, MTI: "2100", ProcessingCode: "00",
		Reason: "approved", Detail: "x<y", Amount: 1234, Currency: "EUR", BillingAmount: 1300, BillingCurrency: "USD",
		Merchant: "COFFEE BAR", MaskedPAN: "539999…1234", ApprovalCode: "482913", HoldID: 9, OriginalID: 3,
		Available: &avail, AvailableCurrency: "EUR", CardID: 1, UserID: 2, AccountID: 3, ProgramID: 4, PartnerID: 5}
	bare := ledger.JournalEventRow{ID: 18, Class: 1, MTI: "2100", Reason: "insufficient_funds", Currency: "EUR", CardID: 1, PartnerID: 5}
	want := map[int64]string{
		17: `{"amount":1234,"approvalCode":"482913","available":98766,"availableCurrency":"EUR","balanceId":3,"billingAmount":1300,"billingCurrency":"USD","cardId":1,"currency":"EUR","customerId":2,"detail":"x\u003cy","holdId":9,"journalId":17,"maskedPan":"539999…1234","merchant":"COFFEE BAR","mti":"2100","originalJournalId":3,"processingCode":"00","programId":4,"reason":"approved"}`,
		18: `{"amount":0,"balanceId":0,"cardId":1,"currency":"EUR","customerId":0,"journalId":18,"maskedPan":"","merchant":"","mti":"2100","processingCode":"","programId":0,"reason":"insufficient_funds"}`,
	}
	for _, r := range []ledger.JournalEventRow{full, bare} {
		evs := JournalEvents(r)
		if len(evs) != 1 {
			t.Fatalf("row %d: %d events, want 1", r.ID, len(evs))
		}
		if got := string(evs[0].Data); got != want[r.ID] || !json.Valid(evs[0].Data) {
			t.Errorf("row %d data\n got %s\nwant %s", r.ID, got, want[r.ID])
		}
	}
}
