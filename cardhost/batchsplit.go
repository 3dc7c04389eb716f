package cardhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/antaca/antaca/ledger"
)

// ErrUnstorable is returned by Authorize for a request the database
// refused to store (a value it cannot hold, such as a NUL byte in text):
// the request itself is at fault, the switch answers it as a format
// error. The other requests of its batch are not affected.
var ErrUnstorable = errors.New("request the database cannot store")

// requestFault reports whether err is the database refusing a value of
// the batch (SQLSTATE class 22, data exception, or 23, integrity
// constraint) rather than the database being unavailable: only then is a
// batch split to find the request at fault.
func requestFault(err error) bool {
	code, ok := ledger.ServerError(err)
	if !ok || len(code) < 2 {
		return false
	}
	return code[:2] == "22" || code[:2] == "23"
}

// writeSplitting writes a batch; when the database refuses it for a
// request's value, it writes each half again, down to the one request at
// fault, which alone fails with ErrUnstorable (set as its err); each half
// is written within a fresh batch budget (Config.BatchTimeout). A batch
// that fails otherwise (the database unreachable, a timeout) fails whole,
// as before: splitting it would only multiply the load on a database
// that is down. Each request is written once: a batch that failed was
// rolled back, and its requests are decided again from what they were
// before it.
func (h *Host) writeSplitting(ctx context.Context, items []*batchItem[*writeReq]) error {
	saved := make([]writeReq, len(items))
	savedAuth := make([]authReq, len(items))
	for i, it := range items {
		saved[i] = *it.in
		if it.in.auth != nil {
			savedAuth[i] = *it.in.auth
		}
	}
	err := h.writeBatch(ctx, items)
	if err == nil || !requestFault(err) || ctx.Err() != nil {
		return err
	}
	for i, it := range items {
		*it.in = saved[i]
		if it.in.auth != nil {
			*it.in.auth = savedAuth[i]
		}
	}
	if len(items) == 1 {
		items[0].in.err = fmt.Errorf("%w: %v", ErrUnstorable, err)
		h.log.Warn("request refused by the database, answered alone", "stan", items[0].in.j.req.STAN, "err", err)
		return nil
	}
	// Each half gets a budget of its own: the database is answering (it
	// refused a value), and a burst's valid requests must not run out of
	// time because the search for the bad one took several round trips.
	mid := len(items) / 2
	for _, half := range [][]*batchItem[*writeReq]{items[:mid], items[mid:]} {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.BatchTimeout)
		err := h.writeSplitting(hctx, half)
		cancel()
		if err != nil {
			for _, it := range half {
				it.in.err = err
			}
		}
	}
	return nil
}
