package cardhost

import (
	"fmt"
	"testing"
)

// TestApprovalCode: DE38 is six digits, FNV-1a of STAN and transmission
// time as the fmt-based version wrote it, so replays stored before keep
// matching what is derived now.
func TestApprovalCode(t *testing.T) {
	ref := func(r *AuthRequest) string {
		s := r.STAN + r.TransmissionTime
		var sum uint32 = 2166136261
		for i := 0; i < len(s); i++ {
			sum = (sum ^ uint32(s[i])) * 16777619
		}
		return fmt.Sprintf("%06d", sum%1000000)
	}
	seen := map[string]bool{}
	for i := range 5000 {
		r := &AuthRequest{STAN: fmt.Sprintf("%06d", i*7919%1000000), TransmissionTime: fmt.Sprintf("1130%06d", i)}
		got := approvalCode(r)
		if want := ref(r); got != want {
			t.Fatalf("approvalCode(%s, %s) = %q, want %q", r.STAN, r.TransmissionTime, got, want)
		}
		seen[got] = true
	}
	if len(seen) < 4900 {
		t.Errorf("5000 requests got %d distinct codes", len(seen))
	}
	if got := approvalCode(&AuthRequest{}); got != ref(&AuthRequest{}) || len(got) != 6 {
		t.Errorf("empty request: %q", got)
	}
}
