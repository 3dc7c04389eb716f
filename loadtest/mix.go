package loadtest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Mix weighs the kinds of requests sent. Weights are relative; the zero
// Mix means approvals only. The kinds after Echo need the iso2003 profile.
type Mix struct {
	Approve  int // authorisation of an "ok" card: approved
	Funds    int // authorisation of a "poor" card (or an "ok" card for an amount no balance holds): declined for funds
	Locked   int // authorisation of a "locked" card: declined
	CVC2     int // authorisation of an "ok" card with a wrong CVC2: declined
	Reversal int // full reversal of an earlier approval (an approval when none is left to reverse)
	Echo     int // network management echo

	Expired         int // authorisation of an "expired" card (or an "ok" card with a past DE14): declined
	ReversalPartial int // partial reversal (DE24 401) of an earlier approval, keeping 60 % of it; the rest is completed later
	// Complete, CompletePartial and CompleteOver are completions (x220) of
	// earlier approvals: for the amount held (DE24 201), for 60 % of it
	// (202), and 15 % above it (202) at a restaurant (MCC 5812, 20 %
	// tolerance). An over-hold completion needs a restaurant approval:
	// with completions in the mix, that share of the approvals is sent
	// with MCC 5812 (the others 5411), and whatever completion is drawn, a
	// restaurant approval is completed 15 % above its hold.
	Complete, CompletePartial, CompleteOver int
	Refund                                  int // refund (x200, processing code 20) naming a completed purchase, for half its capture
	Advice                                  int // authorisation advice (x120) of an "ok" card: approved, completed later like an approval
	Balance                                 int // balance inquiry (x100, processing code 30) of an "ok" card
}

// Realistic is the `-mix realistic` preset (docs/operations.md, "Load
// mixes"): dual-message traffic where most approvals are completed later
// in the run, about 2 % of them reversed, declines at published rates.
var Realistic = Mix{Approve: 94, Funds: 3, Locked: 1, CVC2: 1, Expired: 1,
	Reversal: 1, ReversalPartial: 1, Complete: 70, CompletePartial: 8, CompleteOver: 8,
	Refund: 1, Advice: 1, Balance: 1}

// ParseMix reads a mix as "approve=90,funds=2,locked=2,cvc2=2,reversal=2,echo=2",
// kinds left out weighing 0, or the name of a preset ("realistic").
func ParseMix(s string) (Mix, error) {
	var m Mix
	switch strings.TrimSpace(s) {
	case "":
		return Mix{Approve: 1}, nil
	case "realistic":
		return Realistic, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return Mix{}, fmt.Errorf("mix %q: want kind=weight", part)
		}
		i := slices.Index(opNames[:], k)
		if i < 0 {
			return Mix{}, fmt.Errorf("mix: unknown kind %q (%s, or the preset realistic)", k, strings.Join(opNames[:], ", "))
		}
		*m.weight(op(i)) = n
	}
	return m, nil
}

// String lists the kinds of non-zero weight.
func (m Mix) String() string {
	var parts []string
	for o := range numOps {
		if w := *m.weight(o); w > 0 || o <= opEcho && m.sendsOnlyClassic() {
			parts = append(parts, fmt.Sprintf("%s=%d", opNames[o], w))
		}
	}
	return strings.Join(parts, ",")
}

// sendsOnlyClassic reports whether m sends only the kinds of before issue
// 18 (then String names all six, as it always did).
func (m Mix) sendsOnlyClassic() bool {
	for o := opEcho + 1; o < numOps; o++ {
		if *m.weight(o) > 0 {
			return false
		}
	}
	return true
}

type op int

const (
	opApprove op = iota
	opFunds
	opLocked
	opCVC2
	opReversal
	opEcho
	opExpired
	opReversalPartial
	opComplete
	opCompletePartial
	opCompleteOver
	opRefund
	opAdvice
	opBalance
	numOps
)

var opNames = [numOps]string{"approve", "funds", "locked", "cvc2", "reversal", "echo",
	"expired", "reversal_partial", "complete", "complete_partial", "complete_over", "refund", "advice", "balance"}

func (m *Mix) weight(o op) *int {
	return [numOps]*int{&m.Approve, &m.Funds, &m.Locked, &m.CVC2, &m.Reversal, &m.Echo,
		&m.Expired, &m.ReversalPartial, &m.Complete, &m.CompletePartial, &m.CompleteOver, &m.Refund, &m.Advice, &m.Balance}[o]
}

func (m Mix) weights() [numOps]int {
	var w [numOps]int
	for o := range numOps {
		w[o] = *m.weight(o)
	}
	return w
}

// money reports whether answers to o count as money messages (all but
// echoes and balance inquiries).
func (o op) money() bool { return o != opEcho && o != opBalance }

// authorisation reports whether o is an authorisation or advice of a
// purchase: its approvals are what approved_per_s counts.
func (o op) authorisation() bool {
	switch o {
	case opApprove, opFunds, opLocked, opCVC2, opExpired, opAdvice:
		return true
	}
	return false
}

func (o op) completion() bool {
	return o == opComplete || o == opCompletePartial || o == opCompleteOver
}
