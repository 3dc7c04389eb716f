package cardhost

import (
	"context"
	"time"

	"github.com/antaca/antaca/ledger"
)

// RunSpendRuleListener keeps this host's program cache in step with the
// spend rules other hosts (or API processes) set: every new version of a
// rule notifies its program's id at commit (ledger.SpendRulesChannel),
// and the program is dropped here as soon as the notification arrives,
// typically milliseconds after the change, rather than when its cache
// entry ages out (programTTL). It listens on a connection of its own (not
// the pool's) until ctx ends, reconnecting after a failure; each
// (re)connection drops every cached program, since notifications sent
// while it was away are lost. The host that made the change forgets the
// program itself (SetSpendRule) before its caller sees the answer.
func (h *Host) RunSpendRuleListener(ctx context.Context) {
	for ctx.Err() == nil {
		err := h.listenSpendRules(ctx)
		if ctx.Err() != nil {
			return
		}
		h.log.Warn("spend rule listener", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (h *Host) listenSpendRules(ctx context.Context) error {
	return ledger.ListenSpendRules(ctx, h.pool, h.forgetPrograms, func(programID int64) {
		if programID == 0 {
			h.forgetPrograms()
			return
		}
		h.forgetProgram(programID)
	})
}

// forgetPrograms drops every program from the cache.
func (h *Host) forgetPrograms() {
	h.progs.mu.Lock()
	clear(h.progs.items)
	h.progs.gen++
	h.progs.mu.Unlock()
}
