package cardhost

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/antaca/antaca/ledger"
)

// MCCRule is what a merchant category changes in the ledger's limits: how
// far a clearing may exceed its hold and how long a hold lasts. Zero fields
// take the default.
type MCCRule struct {
	Low, High   string // inclusive MCC range, 4 digits
	ToleranceBP int64  // basis points of the hold a clearing may exceed it by
	HoldDays    int    // hold expiry
}

// DefaultMCCRules are the system's defaults (docs/ledger.md, "Exceptions",
// with their sources): the schemes' published tip tolerance of 20 % for
// restaurants, fast food, bars and taxis; lodging and vehicle rental hold
// 31 days; everything else 0 % and 7 days. Automated fuel dispensers (5542)
// keep 0 %: their pre-authorisation is the documented fixed estimate the
// completion must fit in.
var DefaultMCCRules = []MCCRule{
	{Low: "5812", High: "5814", ToleranceBP: 2000}, // eating places, bars, fast food
	{Low: "4121", High: "4121", ToleranceBP: 2000}, // taxicabs and limousines
	{Low: "7011", High: "7011", HoldDays: 31},      // lodging
	{Low: "3501", High: "3999", HoldDays: 31},      // lodging (chains)
	{Low: "3351", High: "3441", HoldDays: 31},      // vehicle rental (agencies)
	{Low: "7512", High: "7512", HoldDays: 31},      // vehicle rental
}

// DefaultHoldDays is the hold expiry outside the MCCs of DefaultMCCRules.
const DefaultHoldDays = 7

// mccRule returns the rule for mcc: the program's override first, then
// the defaults; fields left zero by an override come from the defaults.
func mccRule(prog *Program, mcc string) MCCRule {
	var r MCCRule
	for _, d := range DefaultMCCRules {
		if mcc >= d.Low && mcc <= d.High && len(mcc) == 4 {
			r.ToleranceBP, r.HoldDays = max(r.ToleranceBP, d.ToleranceBP), max(r.HoldDays, d.HoldDays)
		}
	}
	if prog != nil {
		for _, o := range prog.MCCRules {
			if mcc >= o.Low && mcc <= o.High && len(mcc) == 4 {
				if o.ToleranceBP >= 0 && o.setTolerance {
					r.ToleranceBP = o.ToleranceBP
				}
				if o.HoldDays > 0 {
					r.HoldDays = o.HoldDays
				}
			}
		}
	}
	if r.HoldDays <= 0 {
		r.HoldDays = DefaultHoldDays
	}
	return r
}

// holdTTL is how long a hold of a request with this MCC lasts; 0 when it is
// the default one (the ledger's HoldTTL applies).
func holdTTL(prog *Program, mcc string) time.Duration {
	if r := mccRule(prog, mcc); r.HoldDays != DefaultHoldDays {
		return time.Duration(r.HoldDays) * 24 * time.Hour
	}
	return 0
}

// programRule is a row of program_mcc_rules as programColumns reads it.
type programRule struct {
	Low       string `json:"low"`
	High      string `json:"high"`
	Tolerance *int64 `json:"tolerance_bp"`
	HoldDays  *int   `json:"hold_days"`
}

// parseMCCRules reads the program's overrides (a JSON array, or null).
func parseMCCRules(raw []byte) []programMCCRule {
	var rows []programRule
	if len(raw) == 0 || json.Unmarshal(raw, &rows) != nil {
		return nil
	}
	out := make([]programMCCRule, 0, len(rows))
	for _, r := range rows {
		o := programMCCRule{MCCRule: MCCRule{Low: r.Low, High: r.High}}
		if r.Tolerance != nil {
			o.ToleranceBP, o.setTolerance = *r.Tolerance, true
		}
		if r.HoldDays != nil {
			o.HoldDays = *r.HoldDays
		}
		out = append(out, o)
	}
	return out
}

// programMCCRule is a program's override; setTolerance tells a 0 % override
// from none.
type programMCCRule struct {
	MCCRule
	setTolerance bool
}

// SetProgramLimits changes a program's money-safety settings; it takes
// effect for every authorisation within the program cache's lifetime (a
// few seconds). Zero VerifyMaxTries and PendingReversalWindow keep their
// values.
func (h *Host) SetProgramLimits(ctx context.Context, programID int64, l ProgramLimits) error {
	if l.BlindRefundLimit < 0 || l.BlindRefundLimit > ledger.MaxAmount || l.StandInLimit < 0 || l.StandInLimit > ledger.MaxAmount {
		return fmt.Errorf("program limits: %w: amounts must be 0..%d", ErrInvalidInput, ledger.MaxAmount)
	}
	err := h.store.SetProgramLimits(ctx, programID, l.BlindRefundLimit, l.StandInLimit, l.VerifyMaxTries, int64(l.PendingReversalWindow/time.Second))
	h.forgetProgram(programID)
	return storeErr("program limits", err)
}

// SetMCCRule sets a program's override of the tolerance (basis points;
// nil: the default) and hold days (nil: the default) of an MCC range.
func (h *Host) SetMCCRule(ctx context.Context, programID int64, low, high string, toleranceBP *int64, holdDays *int) error {
	err := h.store.SetMCCRule(ctx, programID, low, high, toleranceBP, holdDays)
	h.forgetProgram(programID)
	return storeErr("mcc rule", err)
}

// forgetProgram drops a program from the cache, and keeps a read of it
// that began before from being cached.
func (h *Host) forgetProgram(id int64) {
	h.progs.mu.Lock()
	delete(h.progs.items, id)
	h.progs.gen++
	h.progs.mu.Unlock()
}
