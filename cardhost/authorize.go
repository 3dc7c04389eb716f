package cardhost

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/antaca/antaca/ledger"
)

// journal is one row of auth_journal.
type journal struct {
	req        *AuthRequest
	cardID     int64
	panEnc     []byte
	reason     Reason
	approval   string
	holdID     int64
	available  *int64
	availCcy   string
	originalID int64
	detail     string
	// approvedAmount: a partial approval's amount in DE4's currency.
	approvedAmount int64
}

// errDuplicate means the request's journal key exists: answer with the
// stored decision.
var errDuplicate = errors.New("duplicate request")

// writeJournal inserts the row in tx; errDuplicate when the request was
// seen before (the caller rolls back and replays the stored answer).
func writeJournal(ctx context.Context, tx ledger.Tx, j journal) (int64, error) {
	id, inserted, err := ledger.InsertJournal(ctx, tx, j.row())
	if err == nil && !inserted {
		return 0, errDuplicate
	}
	return id, err
}

// row is j as the ledger stores it.
func (j journal) row() ledger.JournalRow {
	r := j.req
	masked := ""
	if r.PAN != "" {
		masked = MaskPAN(r.PAN)
	}
	return ledger.JournalRow{Key: journalKey(r), Profile: r.Profile, Class: int32(r.Class), CardID: j.cardID, PANEnc: j.panEnc, PANMasked: masked,
		ProcessingCode: r.ProcessingCode, Amount: r.Amount, Currency: r.Currency, BillingAmount: r.BillingAmount,
		BillingCurrency: r.BillingCurrency, Merchant: r.MerchantName, Reason: string(j.reason), ApprovalCode: j.approval,
		HoldID: j.holdID, Available: j.available, AvailableCurrency: j.availCcy, OriginalID: j.originalID, Detail: j.detail,
		LocalTime: r.LocalTime, ReceivedAt: receivedAt(r), ApprovedAmount: j.approvedAmount}
}

// receivedAt is when the switch read the request, for the journal's
// answer time (the panel's latency); nil when unknown.
func receivedAt(r *AuthRequest) *time.Time {
	if r.Received.IsZero() {
		return nil
	}
	return &r.Received
}

// beforeCommit is the last step inside every transaction that records a
// decision. The switch answers "issuer unavailable" once ctx is done
// (its DecideTimeout), so a hold, capture, release or journal row committed
// after that would be money moved without the answer that says so. The
// check runs inside the transaction, after all its work, and a done ctx
// rolls everything back; the commit itself is the point of no return (a
// ctx that ends during the commit round trip may still see it commit,
// which the acquirer's reversal of an unanswered request then releases).
func beforeCommit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("decision too late, not committed: %w", err)
	}
	return nil
}

// stored returns the decision recorded for a request's journal key, when
// there is one.
func (h *Host) stored(ctx context.Context, r *AuthRequest) (Decision, bool, error) {
	a, ok, err := ledger.StoredAnswerOf(ctx, h.pool, journalKey(r))
	if err != nil || !ok {
		return Decision{}, false, err
	}
	return storedDecision(a), true, nil
}

// Authorize decides one card transaction: the checks of DESIGN.md section 5,
// then the ledger (hold, capture or release) and the journal in one
// transaction. No decision is returned before its commit. A duplicate
// request gets the first answer again. An error means the issuer could not
// decide (the switch answers issuer unavailable). Once ctx is done nothing
// is committed any more (see beforeCommit). It is safe for concurrent use.
func (h *Host) Authorize(ctx context.Context, r *AuthRequest) (Decision, error) {
	if err := h.checkUncertain(r); err != nil {
		return Decision{}, err
	}
	if moneyMessage(r) {
		return h.money(ctx, r)
	}
	enc, err := h.encryptedPAN(r.PAN)
	if err != nil {
		return Decision{}, err
	}
	w := &writeReq{auth: &authReq{panLookup: h.keys.PANLookup(r.PAN)}, j: journal{req: r, panEnc: enc}}
	if err := h.writes[h.shardOf(ctx, r.PAN)].do(ctx, w); err != nil {
		return Decision{}, err
	}
	if rr := w.auth.remote; rr != nil {
		return h.authorizeRemote(ctx, w.j, rr)
	}
	return h.answer(ctx, w)
}

// money answers a completion, reversal, refund or incremental
// authorisation: with the authorisation batch of its PAN (moneybatch.go),
// unless the batch cannot lock its card's balance; then alone.
func (h *Host) money(ctx context.Context, r *AuthRequest) (Decision, error) {
	enc, err := h.encryptedPAN(r.PAN) // once, whichever path writes it
	if err != nil {
		return Decision{}, err
	}
	if r.PAN != "" {
		if d, ok, err := h.moneyInBatch(ctx, r, enc); ok {
			return d, err
		}
		// The batch's probe found no earlier answer: not asked again.
	} else if d, ok, err := h.stored(ctx, r); err != nil || ok {
		return d, err
	}
	switch {
	case isIncrement(r):
		return h.increment(ctx, r, enc)
	case isRefund(r) && r.Class == ClassFinancial:
		return h.refund(ctx, r, enc)
	case r.Class == ClassCompletion:
		return h.complete(ctx, r, enc)
	}
	return h.reverse(ctx, r, enc)
}

// authorizeRemote asks a partner-deposit program's remote URL, outside any
// transaction, then records its answer (j: the request's journal row as
// the batch left it) with a later batch.
func (h *Host) authorizeRemote(ctx context.Context, j journal, rr *remoteReq) (Decision, error) {
	r := j.req
	j.cardID = rr.card.ID
	reason, detail := h.remoteDecision(ctx, &rr.card, &rr.prog, r, rr.out)
	if reason != Approved {
		return h.decline(ctx, j, reason, detail, rr.pc)
	}
	return h.record(ctx, &writeReq{spec: h.holdSpec(&rr.card, &rr.prog, r, rr.out.HoldAmount), capture: r.Class == ClassFinancial,
		prog: &rr.prog, pin: rr.pc, j: j, vel: velocityUses(&rr.card, &rr.prog, r, h.cfg.Now())})
}

// record commits a request's hold (when any) and journal row with the next
// batch and returns its decision; a duplicate gets the first answer.
func (h *Host) record(ctx context.Context, w *writeReq) (Decision, error) {
	if w.j.panEnc == nil {
		enc, err := h.encryptedPAN(w.j.req.PAN)
		if err != nil {
			return Decision{}, err
		}
		w.j.panEnc = enc
	}
	var shard int64
	if w.prog != nil {
		shard = w.prog.PartnerAccountID
	} else if w.j.cardID != 0 {
		shard = w.j.cardID
	}
	if err := h.writes[shard%int64(len(h.writes))].do(ctx, w); err != nil {
		return Decision{}, err
	}
	return h.answer(ctx, w)
}

// answer is the decision of a request its batch committed: the stored one
// when its journal key turned out to exist (a copy of a request answered
// meanwhile).
func (h *Host) answer(ctx context.Context, w *writeReq) (Decision, error) {
	if w.duplicate {
		return h.repeatAnswer(ctx, w.j.req)
	}
	return w.decision, nil
}

// repeatAnswer is the stored answer of a request found to be a repeat by
// its journal key, or by a hold's or posting's key when the journal
// archived its first (migration 036).
func (h *Host) repeatAnswer(ctx context.Context, r *AuthRequest) (Decision, error) {
	d, ok, err := h.stored(ctx, r)
	if err == nil && !ok {
		var a ledger.StoredAnswer
		a, ok, err = ledger.ArchivedAnswerOf(ctx, h.pool, journalKey(r))
		if err == nil && !ok {
			// Its first answer's day was dropped from the archive.
			return Decision{}, fmt.Errorf("repeat of stan %s: its first answer is no longer kept: %w", r.STAN, ErrNotFound)
		}
		d = storedDecision(a)
	}
	return d, err
}

// decline journals a declined request (j: its journal row so far) and
// returns its decision.
func (h *Host) decline(ctx context.Context, j journal, reason Reason, detail string, pc *pinChange) (Decision, error) {
	j.reason, j.detail = reason, detail
	return h.record(ctx, &writeReq{j: j, decision: Decision{Reason: reason}, pin: pc})
}

func (h *Host) encryptedPAN(pan string) ([]byte, error) {
	if pan == "" {
		return nil, nil
	}
	enc, err := h.keys.EncryptPAN(pan)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return enc, nil
}

// fundsAccount is the account whose available balance DE54 reports: the
// user balance where we hold it, otherwise the partner deposit.
func (h *Host) fundsAccount(card *Card, prog *Program) int64 {
	if prog.Funding == FundingPartnerCredit {
		return card.AccountID
	}
	return prog.PartnerAccountID
}

// foldRepeat maps a repeat MTI (origin digit 1, 3 or 5: x101, x121, x401,
// ...) onto its original's (x100, x120, x400), so that a repeat is the same
// request for duplicate detection and the original look-up: it gets the
// first answer, never a second hold. The journal keeps the folded MTI.
func foldRepeat(mti string) string {
	if len(mti) == 4 && mti[3] >= '0' && mti[3] <= '9' && (mti[3]-'0')%2 == 1 {
		return mti[:3] + string(mti[3]-1)
	}
	return mti
}

// journalKey is the request's key in the journal: duplicates share it.
// Every path that writes, probes or locks a request's journal row takes
// its key from here.
func journalKey(r *AuthRequest) ledger.JournalKey {
	return ledger.JournalKey{Acq: r.AcquirerID, STAN: r.STAN, TT: r.TransmissionTime, RRN: r.RRN, MTI: foldRepeat(r.MTI)}
}

// journalRef is the unique reference of a request (its journal key), used
// as the hold's ref.
func journalRef(r *AuthRequest) string {
	k := journalKey(r)
	return k.Acq + "/" + k.STAN + "/" + k.TT + "/" + k.RRN + "/" + k.MTI
}

// partialAmount is a partial approval's amount in DE4's currency: DE4 in
// the proportion held / asked (both in the hold's currency), rounded down,
// so the terminal never collects more than was held.
func partialAmount(r *AuthRequest, held, asked int64) int64 {
	if asked <= 0 || r.Amount == asked {
		return held
	}
	v := new(big.Int).Mul(big.NewInt(r.Amount), big.NewInt(held))
	return v.Quo(v, big.NewInt(asked)).Int64()
}

// approvalCode derives the six-character DE38 from the request's STAN and
// time, so a replay gives the same code.
func approvalCode(r *AuthRequest) string {
	var sum uint32 = 2166136261 // FNV-1a over STAN then time
	for _, s := range [2]string{r.STAN, r.TransmissionTime} {
		for i := 0; i < len(s); i++ {
			sum = (sum ^ uint32(s[i])) * 16777619
		}
	}
	var b [6]byte
	for i, n := 5, sum%1000000; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[:])
}

// originalRow is the journal row a completion or reversal refers to.
type originalRow struct {
	id, holdID, cardID int64
	class              MessageClass
	ref                string // its journalRef: the ref of what it placed or captured
	origRef            string // the journalRef of the message it names in turn, if any
	origProc           string // that message's processing code (DE3 positions 1-2)
	proc               string // its processing code (DE3 positions 1-2)
	amount             int64  // its DE4
	currency           string // its DE49
}

// creditRef is the ref of the credit a refund message gets: its own key,
// or, when it clears a refund message it names (a refund authorisation, an
// x200), the key of that one, so that one refund is credited once however
// many messages clear it. A refund that names its purchase is credited
// under its own key.
func (o originalRow) creditRef() string {
	if o.origRef != "" && o.origProc == ProcRefund {
		return "credit:" + o.origRef
	}
	return "credit:" + o.ref
}

// original finds the journal row a completion or reversal refers to: by
// DE90 when present, else by RRN + STAN + acquirer among authorisations.
func (h *Host) original(ctx context.Context, r *AuthRequest) (o originalRow, found bool, err error) {
	return h.originalOn(ctx, h.pool, r)
}

// originalOn is original reading through q.
func (h *Host) originalOn(ctx context.Context, q ledger.Querier, r *AuthRequest) (o originalRow, found bool, err error) {
	return h.originalIn(ctx, q, r, ledger.FindOriginal)
}

// originalIn is originalOn through find (ledger.FindOriginal, or
// ledger.FindHotOriginal in a batch's tail).
func (h *Host) originalIn(ctx context.Context, q ledger.Querier, r *AuthRequest, find func(ctx context.Context, q ledger.Querier, kind, acq, stan, t, mti, rrn string) (ledger.OriginalRow, bool, error)) (o originalRow, found bool, err error) {
	kind, acq, stan, t, mti, rrn := moneyKey(r)
	row, found, err := find(ctx, q, kind, acq, stan, t, mti, rrn)
	if err != nil || !found {
		return originalRow{}, false, err
	}
	return originalRow{id: row.ID, holdID: row.HoldID, cardID: row.CardID, class: MessageClass(row.Class), ref: row.Ref,
		origRef: row.OrigRef, origProc: row.OrigProc, proc: row.Proc, amount: row.Amount, currency: row.Currency}, true, nil
}

// replacementInHold converts a partial reversal's DE95 amount (in the
// original's transaction currency) into the currency of the hold (the
// billing currency), in the proportion the original was authorised (or,
// captured, cleared) at, rounded half up; it also returns what the hold holds now, -1 when it is
// no longer open.
func replacementInHold(ctx context.Context, tx ledger.Tx, origID, holdID, replacement int64) (remaining, held int64, err error) {
	rate, err := ledger.HoldRateOf(ctx, tx, origID, holdID)
	if err != nil {
		return 0, 0, fmt.Errorf("partial reversal: %w", err)
	}
	origAmount, origCcy, holdOriginal, holdCcy := rate.OrigAmount, rate.OrigCurrency, rate.HoldOriginal, rate.HoldCurrency
	held = rate.Held
	if origCcy == "" || origCcy == holdCcy || origAmount <= 0 {
		return replacement, held, nil
	}
	// holdOriginal × replacement / origAmount; the product can pass int64.
	v := new(big.Int).Mul(big.NewInt(holdOriginal), big.NewInt(replacement))
	v.Add(v, big.NewInt(origAmount/2))
	v.Quo(v, big.NewInt(origAmount))
	if !v.IsInt64() {
		return math.MaxInt64, held, nil // beyond any hold: nothing to release
	}
	return v.Int64(), held, nil
}

// answerTx runs write, which journals the request's answer, in one
// transaction committed only within the decision's budget, and returns the
// answer; a request journaled before (a duplicate) gets the stored one.
func (h *Host) answerTx(ctx context.Context, r *AuthRequest, what string, write func(tx ledger.Tx) (Decision, error)) (Decision, error) {
	var d Decision
	err := ledger.BeginFunc(ctx, h.pool, func(tx ledger.Tx) error {
		var err error
		if d, err = write(tx); err != nil {
			return err
		}
		return beforeCommit(ctx)
	})
	if errors.Is(err, errDuplicate) {
		return h.repeatAnswer(ctx, r)
	}
	if err != nil {
		return Decision{}, fmt.Errorf("%s stan %s: %w", what, r.STAN, err)
	}
	return d, nil
}

// journalApproval writes j as an approval in tx, with DE54 from the card's
// funds account as tx sees it (after what tx posted), and returns the
// decision.
func (h *Host) journalApproval(ctx context.Context, tx ledger.Tx, card *Card, prog *Program, j journal) (Decision, error) {
	acc, err := h.ledger.AccountTx(ctx, tx, h.fundsAccount(card, prog))
	if err != nil {
		return Decision{}, err
	}
	avail := acc.Balance - acc.Held
	d := Decision{Reason: Approved, ApprovalCode: approvalCode(j.req), Available: avail, Currency: prog.CurrencyNumeric, HasAvailable: true, HoldID: j.holdID}
	j.reason, j.approval, j.available, j.availCcy = Approved, d.ApprovalCode, &avail, prog.CurrencyNumeric
	if _, err := writeJournal(ctx, tx, j); err != nil {
		return Decision{}, err
	}
	return d, nil
}

// completionAmount is the final amount of a completion in the program's
// currency and whether the transaction was in another currency (FX).
func completionAmount(r *AuthRequest, prog *Program) (final int64, fx bool) {
	fx = r.Currency != "" && r.Currency != prog.CurrencyNumeric
	switch {
	case r.ReplacementAmount != nil && !fx:
		return *r.ReplacementAmount, false
	case r.BillingCurrency == prog.CurrencyNumeric && r.BillingAmount > 0:
		return r.BillingAmount, fx
	}
	return r.Amount, fx
}

// shardOf is the authorisation batcher of a PAN: that of the partner
// credit/deposit account of the program whose BIN range holds it, so that
// one writer decides all of a program's authorisations (they would queue
// on that account's row lock anyway). A PAN in no program's range, or
// programs that cannot be read, go to the first; the routing decides only
// how requests are grouped, never an answer.
func (h *Host) shardOf(ctx context.Context, pan string) int {
	if len(h.writes) == 1 {
		return 0
	}
	h.progs.mu.Lock()
	all, stale := h.progs.all, time.Since(h.progs.allAt) >= programTTL
	// Before the list was ever read, every request reads it: routed by
	// an empty list, the first requests of a new host would all go to
	// shard 0 except the one refreshing it, splitting an authorisation
	// and its follow-ups over two batches.
	first := h.progs.all == nil
	if stale {
		// This request refreshes the list; the others meanwhile route
		// by the list they have.
		h.progs.allAt = time.Now()
	}
	h.progs.mu.Unlock()
	if stale || first {
		if ps, err := h.Programs(ctx, 0); err == nil {
			all = ps
			h.progs.mu.Lock()
			h.progs.all = ps
			h.progs.mu.Unlock()
		}
	}
	for _, p := range all {
		if n := len(p.BINLow); len(pan) >= n && pan[:n] >= p.BINLow && pan[:n] <= p.BINHigh {
			return int(p.PartnerAccountID % int64(len(h.writes)))
		}
	}
	return 0
}
