package cardhost

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/antaca/antaca/ledger"
)

// SpendRule is a control on a card, a user balance or a program (issue 17):
// merchant categories allowed or blocked, merchant countries allowed or
// blocked, channels blocked. Kept by the ledger with every version.
type SpendRule = ledger.SpendRule

// SpendRuleFilter narrows SpendRules.
type SpendRuleFilter = ledger.SpendRuleFilter

// Spend rule scopes, kinds, modes and channels.
const (
	ScopeProgram = "program"
	ScopeBalance = "balance"
	ScopeCard    = "card"

	RuleMCC      = "mcc"
	RuleCountry  = "country"
	RuleChannel  = "channel"
	RuleVelocity = "velocity"

	ModeAllow = "allow"
	ModeBlock = "block"
	ModeLimit = "limit" // velocity

	PeriodTransaction = "transaction"
	PeriodDay         = "day"   // calendar UTC day
	PeriodWeek        = "week"  // ISO week, Monday 00:00 UTC
	PeriodMonth       = "month" // calendar UTC month
	PeriodLifetime    = "lifetime"

	ChannelCardPresent    = "card_present"
	ChannelCardNotPresent = "card_not_present"
	ChannelATM            = "atm"
	ChannelContactless    = "contactless"
)

// Spend rule declines (specs/actioncodes.json: 1019/57, not permitted to
// cardholder; the journal keeps which rule kind refused).
const (
	MCCNotPermitted     Reason = "mcc_not_permitted"
	CountryNotPermitted Reason = "country_not_permitted"
	ChannelNotPermitted Reason = "channel_not_permitted"
	ExceedsAmountLimit  Reason = "exceeds_amount_limit" // a velocity rule's amount: 1021/61
	ExceedsCountLimit   Reason = "exceeds_count_limit"  // a velocity rule's count: 1023/65
)

var mccValueRe = regexp.MustCompile(`^[0-9]{4}(-[0-9]{4})?$`)

// ErrUnknownCountry is a country rule's value that is no ISO 3166-1 code
// (countries.go); the API answers it 422.
var ErrUnknownCountry = errors.New("unknown country code")

// validSpendRule checks r's scope, kind, mode and values, country codes
// upper-cased and known to ISO 3166-1 in any of its three forms (alpha-2,
// alpha-3, numeric), kept as written.
func validSpendRule(r *SpendRule) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("spend rule: %w: %s", ErrInvalidInput, fmt.Sprintf(format, a...))
	}
	if r.Scope != ScopeProgram && r.Scope != ScopeBalance && r.Scope != ScopeCard {
		return bad("scope must be program, balance or card")
	}
	if r.TargetID <= 0 {
		return bad("targetId must be a positive id")
	}
	if r.Kind == RuleVelocity {
		return validVelocity(r, bad)
	}
	if r.Period != "" || r.MaxAmount != nil || r.MaxCount != nil {
		return bad("period, maxAmountMinor and maxCount are for velocity rules")
	}
	if r.Mode != ModeAllow && r.Mode != ModeBlock {
		return bad("mode must be allow or block")
	}
	if len(r.Values) == 0 || len(r.Values) > 500 {
		return bad("values: 1 to 500 are required")
	}
	for i, v := range r.Values {
		switch r.Kind {
		case RuleMCC:
			if !mccValueRe.MatchString(v) || len(v) == 9 && v[5:] < v[:4] {
				return bad("values: %q is not an MCC (4 digits) or a range of them (5812-5814)", v)
			}
		case RuleCountry:
			r.Values[i] = strings.ToUpper(strings.TrimSpace(v))
			if _, ok := CountryAlpha2(r.Values[i]); !ok {
				return fmt.Errorf("spend rule: %w: values: %q is not an ISO 3166-1 alpha-2, alpha-3 or numeric country code", ErrUnknownCountry, v)
			}
		case RuleChannel:
			if !slices.Contains([]string{ChannelCardPresent, ChannelCardNotPresent, ChannelATM, ChannelContactless}, v) {
				return bad("values: %q is not a channel (card_present, card_not_present, atm, contactless)", v)
			}
			if r.Mode != ModeBlock {
				return bad("channel rules block channels: mode must be block")
			}
		default:
			return bad("kind must be mcc, country or channel")
		}
	}
	return nil
}

// validVelocity checks a velocity rule: a period, and a maximum amount
// and/or count (a count makes no sense per transaction).
func validVelocity(r *SpendRule, bad func(string, ...any) error) error {
	if r.Mode == "" {
		r.Mode = ModeLimit
	}
	if r.Mode != ModeLimit || len(r.Values) > 0 {
		return bad("velocity rules take period, maxAmountMinor and/or maxCount, no mode or values")
	}
	r.Values = []string{}
	switch r.Period {
	case PeriodTransaction, PeriodDay, PeriodWeek, PeriodMonth, PeriodLifetime:
	default:
		return bad("period must be transaction, day, week, month or lifetime")
	}
	if r.MaxAmount == nil && r.MaxCount == nil {
		return bad("a velocity rule needs maxAmountMinor, maxCount or both")
	}
	if r.MaxAmount != nil && (*r.MaxAmount < 0 || *r.MaxAmount > ledger.MaxAmount) {
		return bad("maxAmountMinor must be 0..%d", ledger.MaxAmount)
	}
	if r.MaxCount != nil && (*r.MaxCount < 0 || *r.MaxCount > 1_000_000) {
		return bad("maxCount must be 0..1000000")
	}
	if r.Period == PeriodTransaction && r.MaxCount != nil {
		return bad("a per-transaction rule limits the amount only")
	}
	return nil
}

// spendRuleSet is a program's active rules as the program cache keeps
// them, by what they apply to. Empty (no rules) costs the authorisation
// three nil-map look-ups.
type spendRuleSet struct {
	program   []SpendRule
	byAccount map[int64][]SpendRule
	byCard    map[int64][]SpendRule
	velocity  bool // a velocity rule over a period is among them (velocity.go)
}

func newSpendRuleSet(rules []SpendRule) spendRuleSet {
	var s spendRuleSet
	for _, r := range rules {
		if r.Kind == RuleCountry {
			// Matched as alpha-2, whatever form the rule and the
			// merchant use (refuses).
			vals := make([]string, len(r.Values))
			for i, v := range r.Values {
				if vals[i], _ = CountryAlpha2(v); vals[i] == "" {
					vals[i] = v
				}
			}
			r.Values = vals
		}
		s.velocity = s.velocity || r.Kind == RuleVelocity && r.Period != PeriodTransaction
		switch r.Scope {
		case ScopeProgram:
			s.program = append(s.program, r)
		case ScopeBalance:
			if s.byAccount == nil {
				s.byAccount = make(map[int64][]SpendRule)
			}
			s.byAccount[r.TargetID] = append(s.byAccount[r.TargetID], r)
		case ScopeCard:
			if s.byCard == nil {
				s.byCard = make(map[int64][]SpendRule)
			}
			s.byCard[r.TargetID] = append(s.byCard[r.TargetID], r)
		}
	}
	return s
}

// refuse returns the reason the first rule that refuses req on card, for
// amount (the hold, in the program's currency), gives (program, then
// balance, then card rules); "" when none does. Velocity over a period is
// the batch's (velocity.go).
func (s *spendRuleSet) refuse(card *Card, req *AuthRequest, amount int64) Reason {
	if len(s.program) == 0 && s.byAccount == nil && s.byCard == nil {
		return ""
	}
	for _, rules := range [3][]SpendRule{s.program, s.byAccount[card.AccountID], s.byCard[card.ID]} {
		for i := range rules {
			if r := refuses(&rules[i], req, amount); r != "" {
				return r
			}
		}
	}
	return ""
}

// refuses applies one rule to req. An allow list refuses what it does not
// name, a missing MCC or country included; a block list refuses what it
// names.
func refuses(r *SpendRule, req *AuthRequest, amount int64) Reason {
	switch r.Kind {
	case RuleVelocity:
		if r.Period == PeriodTransaction && amount > *r.MaxAmount {
			return ExceedsAmountLimit
		}
	case RuleMCC:
		if listed(r.Values, req.MCC, mccMatch) != (r.Mode == ModeAllow) {
			return MCCNotPermitted
		}
	case RuleCountry:
		c, _ := CountryAlpha2(req.MerchantCountry) // "" when absent or unknown: named by no list
		if listed(r.Values, c, func(v, c string) bool { return v == c }) != (r.Mode == ModeAllow) {
			return CountryNotPermitted
		}
	case RuleChannel:
		ch := ChannelsOf(req)
		for _, v := range r.Values {
			if ch.Has(v) {
				return ChannelNotPermitted
			}
		}
	}
	return ""
}

func listed(vals []string, x string, match func(v, x string) bool) bool {
	if x == "" {
		return false
	}
	for _, v := range vals {
		if match(v, x) {
			return true
		}
	}
	return false
}

// mccMatch reports whether mcc is v or in v's range (5812-5814).
func mccMatch(v, mcc string) bool {
	if len(v) == 9 {
		return len(mcc) == 4 && mcc >= v[:4] && mcc <= v[5:]
	}
	return v == mcc
}

// Channels is how a request reached us (docs/decisions.md, "Spend rules").
type Channels struct {
	CardPresent bool // card present (ATM included); false: not present, or unknown
	ATM         bool // cash (processing code 01) or MCC 6011
	Contactless bool
}

// Has reports whether the request came through channel name.
func (c Channels) Has(name string) bool {
	switch name {
	case ChannelCardPresent:
		return c.CardPresent
	case ChannelCardNotPresent:
		return !c.CardPresent
	case ChannelATM:
		return c.ATM
	case ChannelContactless:
		return c.Contactless
	}
	return false
}

// ChannelsOf reads the channel from the request: ATM from the processing
// code (01 cash) or MCC 6011; card presence and contactless from DE22.
// iso87: the POS entry mode's PAN entry (positions 1-2): 02, 05, 80, 90
// (stripe, chip, fallback), 07 and 91 (contactless) are card present; 01
// (key entry), 09, 10 (credential on file), 81, 82 (e-commerce) and
// anything else, absent or unknown, are not. iso2003: the CMF's POS data
// code (jPOS PosDataCode, 16 bytes as 32 hex digits): reading method
// contactless, magnetic stripe, ICC (or their failed reads and fallback)
// is card present, unless the POS environment says mail/telephone order,
// e-commerce, m-commerce, recurring or stored details; contactless is the
// reading method's contactless flag.
func ChannelsOf(req *AuthRequest) Channels {
	c := Channels{ATM: req.ProcessingCode == ProcCash || req.MCC == "6011"}
	pos := req.POSEntryMode
	if req.Profile == "iso2003" && len(pos) == 32 {
		b, err := hex.DecodeString(pos)
		if err != nil {
			return c
		}
		const (
			contactless = 1 << 1
			stripe      = 1 << 4
			icc         = 1 << 5
			failedICC   = 1 << 11
			failedMS    = 1 << 12
			fallback    = 1 << 13
		)
		rm := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		env := uint32(b[8]) | uint32(b[9])<<8 | uint32(b[10])<<16 | uint32(b[11])<<24
		const remote = 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 // MOTO, e-commerce, m-commerce, recurring, stored details
		c.Contactless = rm&contactless != 0
		c.CardPresent = rm&(contactless|stripe|icc|failedICC|failedMS|fallback) != 0 && env&remote == 0
		return c
	}
	if len(pos) >= 2 {
		switch pos[:2] {
		case "07", "91":
			c.CardPresent, c.Contactless = true, true
		case "02", "05", "80", "90":
			c.CardPresent = true
		}
	}
	return c
}

// SetSpendRule creates a rule (r.ID 0) on a target of partnerID's (any
// partner's when 0) or sets a new version of one: its mode, values and
// whether it is active. actor is recorded with the version. The rule takes
// effect for the next authorisation on this host (the cache forgets the
// program, and a read of it begun before is not cached), and on other
// hosts when the commit's notification reaches them
// (RunSpendRuleListener), at the latest when their cache entry ages out.
func (h *Host) SetSpendRule(ctx context.Context, partnerID int64, r SpendRule, actor string) (SpendRule, error) {
	if r.ID != 0 {
		old, err := h.spendRule(ctx, partnerID, r.ID)
		if err != nil {
			return SpendRule{}, err
		}
		r.Scope, r.TargetID, r.Kind, r.Period = old.Scope, old.TargetID, old.Kind, old.Period
	}
	if err := validSpendRule(&r); err != nil {
		return SpendRule{}, err
	}
	if r.ID != 0 {
		out, err := h.ledger.UpdateSpendRule(ctx, partnerID, r, actor)
		h.forgetProgram(out.ProgramID)
		return out, err
	}
	prog, owner, err := h.ledger.SpendRuleTarget(ctx, r.Scope, r.TargetID)
	if err != nil {
		return SpendRule{}, err
	}
	if partnerID != 0 && owner != partnerID {
		return SpendRule{}, fmt.Errorf("spend rule target %s %d: %w", r.Scope, r.TargetID, ErrNotFound)
	}
	r.ProgramID = prog
	out, err := h.ledger.CreateSpendRule(ctx, r, actor)
	h.forgetProgram(prog)
	return out, err
}

// SpendRules lists rules, a partner's only when f.PartnerID is set.
func (h *Host) SpendRules(ctx context.Context, f SpendRuleFilter) ([]SpendRule, error) {
	return h.ledger.SpendRules(ctx, f)
}

// SpendRuleHistory returns every version of a rule of partnerID's (any
// partner's when 0), oldest first.
func (h *Host) SpendRuleHistory(ctx context.Context, partnerID, id int64) ([]SpendRule, error) {
	return h.ledger.SpendRuleHistory(ctx, partnerID, id)
}

// spendRule returns the current version of a rule of partnerID's.
func (h *Host) spendRule(ctx context.Context, partnerID, id int64) (SpendRule, error) {
	vs, err := h.ledger.SpendRuleHistory(ctx, partnerID, id)
	if err != nil {
		return SpendRule{}, err
	}
	return vs[len(vs)-1], nil
}

// loadSpendRules reads a program's active rules into it, through q.
func loadSpendRules(ctx context.Context, q ledger.Querier, p *Program) error {
	rules, err := ledger.ProgramSpendRules(ctx, q, p.ID)
	if err != nil {
		return err
	}
	p.SpendRules = newSpendRuleSet(rules)
	return nil
}
