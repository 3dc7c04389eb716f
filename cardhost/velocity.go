package cardhost

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/antaca/antaca/ledger"
)

// velUse is a velocity rule over a period that an authorisation is
// counted against: its counter and its limits.
type velUse struct {
	key       ledger.SpendCounterKey
	maxAmount *int64
	maxCount  *int
}

// velocityUses returns the velocity rules over a period (not per
// transaction, which "spend rules" checks) that apply to req on card: the
// program's, the card balance's and the card's, for purchases and cash.
// nil, at no cost, for a program without any.
func velocityUses(card *Card, prog *Program, req *AuthRequest, now time.Time) []velUse {
	s := &prog.SpendRules
	if !s.velocity || req.Class == ClassAdvice || (req.ProcessingCode != ProcPurchase && req.ProcessingCode != ProcCash) {
		return nil
	}
	var uses []velUse
	for _, rules := range [3][]SpendRule{s.program, s.byAccount[card.AccountID], s.byCard[card.ID]} {
		for i := range rules {
			r := &rules[i]
			if r.Kind != RuleVelocity || r.Period == PeriodTransaction {
				continue
			}
			uses = append(uses, velUse{key: ledger.SpendCounterKey{RuleID: r.ID, PeriodStart: periodStart(r.Period, now)},
				maxAmount: r.MaxAmount, maxCount: r.MaxCount})
		}
	}
	return uses
}

// periodStart is the start of the calendar UTC period holding now: the
// day, the ISO week (Monday), the month; the Unix epoch for lifetime.
func periodStart(period string, now time.Time) time.Time {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	switch period {
	case PeriodDay:
		return day
	case PeriodWeek:
		return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
	case PeriodMonth:
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Unix(0, 0).UTC()
}

// checkVelocity is the pipeline's "velocity" check: it notes the counters
// an approval will be charged to; the batch checks them (velocityDecide)
// once it has locked them.
func checkVelocity(d *decision) bool {
	d.vel = velocityUses(d.in.Card, d.in.Program, d.in.Req, d.in.Now)
	return false
}

// lockVelocity locks the velocity counters the batch's writes need, after
// the user accounts (the batch's first round trip) and before the partner
// rows (written at its end): DESIGN section 6's order. No round trip when
// no write has a velocity rule.
func lockVelocity(ctx context.Context, tx ledger.Tx, writes []*writeReq) (map[ledger.SpendCounterKey]ledger.SpendUsage, error) {
	var keys []ledger.SpendCounterKey
	for _, w := range writes {
		for _, u := range w.vel {
			keys = append(keys, u.key)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return ledger.LockSpendCounters(ctx, tx, keys)
}

// velocityDecide declines, in arrival order, each write whose hold would
// take a locked counter over its rule's amount or count, counting the
// writes before it as approved for their whole amount (a later funds
// decline or partial approval only leaves more room: never exceeded).
func velocityDecide(writes []*writeReq, base map[ledger.SpendCounterKey]ledger.SpendUsage) {
	if base == nil {
		return
	}
	usage := maps.Clone(base)
	for _, w := range writes {
		if len(w.vel) == 0 || w.spec == nil {
			continue
		}
		amount, reason, rule := w.spec.Amount, Reason(""), int64(0)
		for _, v := range w.vel {
			u := usage[v.key]
			switch {
			case v.maxAmount != nil && u.Amount+amount > *v.maxAmount:
				reason, rule = ExceedsAmountLimit, v.key.RuleID
			case v.maxCount != nil && u.Count+1 > int64(*v.maxCount):
				reason, rule = ExceedsCountLimit, v.key.RuleID
			}
			if reason != "" {
				break
			}
		}
		if reason != "" {
			w.spec, w.capture, w.vel = nil, false, nil
			w.decision, w.j.reason, w.j.detail = Decision{Reason: reason}, reason, fmt.Sprintf("spend rule %d", rule)
			continue
		}
		for _, v := range w.vel {
			u := usage[v.key]
			usage[v.key] = ledger.SpendUsage{Amount: u.Amount + amount, Count: u.Count + 1}
		}
	}
}

// queueVelocity queues the charges of the writes whose new hold was
// placed: what was held, once per approval, to each of its counters.
func queueVelocity(q *ledger.Batch, writes []*writeReq) {
	var cs []ledger.SpendCharge
	for _, w := range writes {
		if len(w.vel) == 0 || !w.newHold || w.decision.HoldID == 0 {
			continue
		}
		for _, v := range w.vel {
			cs = append(cs, ledger.SpendCharge{SpendCounterKey: v.key, HoldID: w.decision.HoldID, Amount: w.held})
		}
	}
	if len(cs) > 0 {
		ledger.QueueSpendCharges(q, cs)
	}
}

// spendDecline is a spend rule's refusal of an incremental
// authorisation.
type spendDecline struct {
	reason Reason
	rule   int64
}

func (e *spendDecline) Error() string {
	return fmt.Sprintf("incremental refused by spend rule %d", e.rule)
}

// incrementHold is ledger.IncrementHoldTx under the velocity rules of the
// card (docs/decisions.md, "Spend rules: increments"): the increment is
// the same purchase as its hold, so a per-transaction rule limits the
// hold's whole amount with it, and a rule over a period is checked
// against, and charged to, the counter the hold was charged to (this
// period's when the rule came later) for its amount, its count
// unchanged. A rule it would exceed is a *spendDecline and nothing
// changes. The hold and its user account are locked first, then the
// counters, then IncrementHoldTx locks the partner rows: DESIGN section
// 6's order.
func (h *Host) incrementHold(ctx context.Context, tx ledger.Tx, card *Card, prog *Program, r *AuthRequest, holdID, amount int64, ttl time.Duration) (ledger.Hold, int64, error) {
	uses := velocityUses(card, prog, r, h.cfg.Now())
	var perTx []*SpendRule
	s := &prog.SpendRules
	for _, rules := range [3][]SpendRule{s.program, s.byAccount[card.AccountID], s.byCard[card.ID]} {
		for i := range rules {
			if rules[i].Kind == RuleVelocity && rules[i].Period == PeriodTransaction {
				perTx = append(perTx, &rules[i])
			}
		}
	}
	if len(uses) == 0 && len(perTx) == 0 {
		return h.ledger.IncrementHoldTx(ctx, tx, holdID, amount, journalRef(r), ttl)
	}
	held, err := ledger.LockSpendHold(ctx, tx, holdID)
	if errors.Is(err, ledger.ErrHoldResolved) {
		return h.ledger.IncrementHoldTx(ctx, tx, holdID, amount, journalRef(r), ttl) // answers it
	}
	if err != nil {
		return ledger.Hold{}, 0, err
	}
	for _, rule := range perTx {
		if held.OriginalAmount+amount > *rule.MaxAmount {
			return ledger.Hold{}, 0, &spendDecline{reason: ExceedsAmountLimit, rule: rule.ID}
		}
	}
	keys := make([]ledger.SpendCounterKey, len(uses))
	for i, u := range uses {
		keys[i] = u.key
		if start, ok := held.Periods[u.key.RuleID]; ok {
			keys[i].PeriodStart = start
		}
	}
	if len(keys) > 0 {
		usage, err := ledger.LockSpendCounters(ctx, tx, slices.Clone(keys))
		if err != nil {
			return ledger.Hold{}, 0, err
		}
		for i, u := range uses {
			if u.maxAmount != nil && usage[keys[i]].Amount+amount > *u.maxAmount {
				return ledger.Hold{}, 0, &spendDecline{reason: ExceedsAmountLimit, rule: u.key.RuleID}
			}
		}
	}
	hold, avail, err := h.ledger.IncrementHoldTx(ctx, tx, holdID, amount, journalRef(r), ttl)
	if err != nil || len(keys) == 0 {
		return hold, avail, err
	}
	return hold, avail, ledger.ChargeSpendIncrement(ctx, tx, holdID, keys, amount)
}
