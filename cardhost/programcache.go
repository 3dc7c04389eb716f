package cardhost

import (
	"context"
	"sync"
	"time"

	"github.com/antaca/antaca/ledger"
)

// programCache keeps programs for a few seconds: they change rarely and are
// read by every authorisation.
type programCache struct {
	mu    sync.Mutex
	items map[int64]cachedProgram
	all   []Program // every program, for routing by BIN
	allAt time.Time
	// gen grows with every forgetProgram: a program read before a change
	// (a spend rule's) is not cached after it (spendrules.go).
	gen uint64
}

type cachedProgram struct {
	p  Program
	at time.Time
}

var programTTL = 5 * time.Second

func (h *Host) cachedProgram(ctx context.Context, id int64) (Program, error) {
	return h.cachedProgramOn(ctx, h.pool, id)
}

// cachedProgramOn is cachedProgram reading through q: an authorisation
// batch reads through its own transaction, never waiting for a second
// connection of the pool while it holds one and its locks.
func (h *Host) cachedProgramOn(ctx context.Context, q ledger.Querier, id int64) (Program, error) {
	h.progs.mu.Lock()
	c, ok := h.progs.items[id]
	gen := h.progs.gen
	h.progs.mu.Unlock()
	if ok && time.Since(c.at) < programTTL {
		return c.p, nil
	}
	p, err := h.programOn(ctx, q, id)
	if err == nil {
		err = loadSpendRules(ctx, q, &p) // spendrules.go: the program's spend rules ride with it
	}
	if err != nil {
		return Program{}, err
	}
	h.progs.mu.Lock()
	if h.progs.items == nil {
		h.progs.items = make(map[int64]cachedProgram)
	}
	if h.progs.gen == gen {
		h.progs.items[id] = cachedProgram{p: p, at: time.Now()}
	}
	h.progs.mu.Unlock()
	return p, nil
}
