package cardhost

import (
	"context"
	"time"

	"github.com/antaca/antaca/ledger"
)

// CachedProgramOn reads a program through the host's cache, through q.
func (h *Host) CachedProgramOn(ctx context.Context, q ledger.Querier, id int64) (Program, error) {
	return h.cachedProgramOn(ctx, q, id)
}

// SpendRuleRefusal is what the program's spend rules (not velocity over a
// period) answer a purchase of amount on card.
func (p *Program) SpendRuleRefusal(card *Card, req *AuthRequest, amount int64) Reason {
	return p.SpendRules.refuse(card, req, amount)
}

// SetProgramTTL sets how long the program cache keeps a program; the
// returned function puts it back.
func SetProgramTTL(d time.Duration) func() {
	old := programTTL
	programTTL = d
	return func() { programTTL = old }
}
