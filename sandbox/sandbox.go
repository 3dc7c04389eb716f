// Package sandbox simulates card messages for partners testing their
// integration: it builds a real ISO 8583 message of a profile and sends it
// over TCP to the running switch, which decides it as any acquirer's
// message (the same handler, card host and ledger). Only cards of programs
// flagged as sandboxes can be simulated; every simulated message carries
// DE32 = ledger.SimulationAcquirer, so its journal rows, holds and postings
// are tagged, and `antaca ledger verify` fails on any outside a sandbox.
package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/specs"
	authswitch "github.com/antaca/antaca/switch"
)

// Kinds of simulated message.
const (
	Authorization = "authorization" // x100
	Clearing      = "clearing"      // x220 completing an authorisation
	Reversal      = "reversal"      // x420 of an authorisation
	Refund        = "refund"        // x220 with processing code 20, naming its purchase or blind
	Advice        = "advice"        // x120: a scheme's stand-in, no funds check
)

// Errors of the simulator.
var (
	ErrNotSandbox = errors.New("program is not a sandbox")
	ErrKind       = errors.New("unknown simulation kind")
	ErrOriginal   = errors.New("clearing and reversal name the simulation id of an authorisation of the card (a refund may)")
	ErrSwitch     = errors.New("switch unreachable")
)

// Config configures a Simulator.
type Config struct {
	// Addr is the switch's ISO listener of Profile, e.g. 127.0.0.1:8583.
	Addr string
	// Profile is the ISO 8583 profile spoken to Addr (default iso2003).
	Profile string
	// Timeout bounds one message, connection to answer (default 10 s).
	Timeout time.Duration
}

// Simulator sends simulated messages. It is safe for concurrent use.
type Simulator struct {
	cfg  Config
	host *cardhost.Host
	spec *iso8583.MessageSpec
}

// New returns a simulator of host's cards sending to the switch at cfg.Addr.
func New(host *cardhost.Host, cfg Config) (*Simulator, error) {
	if cfg.Profile == "" {
		cfg.Profile = authswitch.ProfileISO2003
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	spec, err := specs.ISOSpec(cfg.Profile)
	if err != nil {
		return nil, err
	}
	return &Simulator{cfg: cfg, host: host, spec: spec}, nil
}

// Request is one simulated message about a card.
type Request struct {
	Kind   string
	CardID int64
	// Amount in minor units of the program's currency (clearing: the final
	// amount; reversal: the authorisation's amount, all of it released).
	Amount int64
	// Original is the simulation id of the authorisation a clearing or a
	// reversal refers to, and a refund may name (its purchase: the refund
	// is then credited up to what the purchase captured less earlier
	// refunds; without it, a blind refund, up to the program's limit).
	Original string
	Merchant string // DE43, default "ANTACA SANDBOX SHOP" in PARIS FR
	MCC      string // iso2003 DE26, iso87 DE18; default 5411
}

// Result is the switch's answer and the card's state after it.
type Result struct {
	ID             string // simulation id: the STAN, named by a later clearing or reversal
	MTI            string
	ActionCode     string // DE39
	ApprovalCode   string // DE38
	Reason         string // the journal's reason
	Waiting        int64  // a refund's amount not credited, waiting for an Admin
	ExceptionID    int64  // the blind_refund exception of what waits
	Balance        ledger.Account
	Authorizations []ledger.Authorization // the card's latest, with their holds
}

// Simulate checks that the card's program is a sandbox, builds the message
// and sends it to the switch.
func (s *Simulator) Simulate(ctx context.Context, r Request) (Result, error) {
	card, data, err := s.host.FullData(ctx, r.CardID)
	if err != nil {
		return Result{}, err
	}
	ok, err := s.host.Sandbox(ctx, card.ProgramID)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{}, fmt.Errorf("simulate card %d: %w", card.ID, ErrNotSandbox)
	}
	prog, err := s.host.Program(ctx, card.ProgramID)
	if err != nil {
		return Result{}, err
	}
	var orig ledger.SimulatedMessage
	fn, proc := "", "000000"
	switch r.Kind {
	case Authorization:
		fn = "100"
	case Advice:
		fn = "120"
	case Refund:
		fn, proc = "220", "200000"
	case Clearing:
		fn = "220"
	case Reversal:
		fn = "420"
	default:
		return Result{}, fmt.Errorf("%w %q", ErrKind, r.Kind)
	}
	if r.Original != "" || r.Kind == Clearing || r.Kind == Reversal {
		if r.Kind == Authorization || r.Kind == Advice {
			return Result{}, ErrOriginal
		}
		if orig, err = s.original(ctx, card.ID, r.Original); err != nil {
			return Result{}, err
		}
	}
	stan, err := newSTAN()
	if err != nil {
		return Result{}, err
	}
	merchant, mcc := r.Merchant, r.MCC
	if merchant == "" {
		merchant = "ANTACA SANDBOX SHOP"
	}
	if mcc == "" {
		mcc = "5411"
	}
	now := time.Now().UTC()
	mti := mtiOf(s.cfg.Profile, fn)
	f := map[int]string{
		2: data.PAN, 3: proc, 7: now.Format("0102150405"), 11: stanOf(s.cfg.Profile, stan), 14: data.Expiry,
		32: ledger.SimulationAcquirer, 37: "SIM" + stan[3:], 42: "SANDBOXMERCHANT",
	}
	if s.cfg.Profile == authswitch.ProfileISO2003 {
		if err := cmfFields(f, r.Kind, prog.CurrencyNumeric, r.Amount, merchant, mcc, orig); err != nil {
			return Result{}, err
		}
		f[12], f[41] = now.Format("20060102150405"), "SANDBOX000000001"
	} else {
		f[4], f[18], f[22], f[49] = fmt.Sprintf("%012d", r.Amount), mcc, "812", prog.CurrencyNumeric
		f[43] = fmt.Sprintf("%-25.25s%-13.13sFR", merchant, "PARIS")
		f[12], f[13], f[41] = now.Format("150405"), now.Format("0102"), "SANDBOX1"
		if orig.JournalID != 0 {
			// DE90: MTI, STAN, DE7, acquirer n11, forwarding n11.
			f[90] = orig.MTI + orig.STAN + orig.TransmissionTime + fmt.Sprintf("%011s", ledger.SimulationAcquirer) + "00000000000"
		}
	}
	m := iso8583.NewMessage(s.spec)
	m.MTI(mti)
	for k, v := range f {
		if err := m.Field(k, v); err != nil {
			return Result{}, fmt.Errorf("simulate: DE%d: %w", k, cardhost.ErrInvalidInput)
		}
	}
	resp, err := s.send(ctx, m)
	if err != nil {
		return Result{}, err
	}
	res := Result{ID: stan, MTI: mti}
	res.ActionCode, _ = resp.GetString(39)
	res.ApprovalCode, _ = resp.GetString(38)
	if res.Balance, err = s.host.Account(ctx, card.AccountID); err != nil {
		return Result{}, err
	}
	if res.Authorizations, err = s.host.Ledger().Authorizations(ctx, 0, card.ID, 20); err != nil {
		return Result{}, err
	}
	// The journal's row of the message: its reason, and for a refund what
	// waits for an Admin.
	if j, err := s.host.Ledger().SimulatedMessageOf(ctx, stanOf(s.cfg.Profile, stan), mti); err == nil {
		res.Reason, res.Waiting, res.ExceptionID = j.Reason, j.Waiting, j.ExceptionID
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return Result{}, err
	}
	return res, nil
}

// original is the card's simulated message of simulation id id, the
// authorisation a clearing, reversal or refund names.
func (s *Simulator) original(ctx context.Context, cardID int64, id string) (ledger.SimulatedMessage, error) {
	if len(id) != 12 || !digits(id) {
		return ledger.SimulatedMessage{}, ErrOriginal
	}
	o, err := s.host.Ledger().SimulatedMessageOf(ctx, stanOf(s.cfg.Profile, id), "")
	if errors.Is(err, ledger.ErrNotFound) || err == nil && o.CardID != cardID {
		return ledger.SimulatedMessage{}, fmt.Errorf("%w: no simulation %s of this card", ErrOriginal, id)
	}
	return o, err
}

// posDataCode is the CMF's DE22 (jPOS PosDataCode, 16 bytes): magnetic
// stripe read, online PIN capable, attended terminal.
var posDataCode = string([]byte{0x10, 0, 0, 0, 0x08, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0})

// cmfFields sets the jPOS CMF's own fields (docs/iso8583.md): DE4 with its
// currency and minor unit, DE22 POS data code, DE24 function code, DE26
// MCC, DE43 sub-fields and DE56 naming the original (MTI, STAN, local
// date-time, acquirer, no inner length).
func cmfFields(f map[int]string, kind, currency string, amount int64, merchant, mcc string, orig ledger.SimulatedMessage) error {
	f[4] = specs.Amount2003{Currency: currency, MinorUnit: specs.MinorUnit(currency), Amount: amount}.String()
	f[22], f[26] = posDataCode, mcc
	de43, err := specs.PackSubfields(specs.CardAcceptorTable, map[int]string{2: merchant, 4: "PARIS", 7: "FR"})
	if err != nil {
		return fmt.Errorf("simulate: DE43: %w", cardhost.ErrInvalidInput)
	}
	f[43] = string(de43)
	switch kind {
	case Authorization, Advice:
		f[24] = "100"
	case Clearing:
		f[24] = "202" // for another amount than authorised
		if amount == orig.Amount {
			f[24] = "201"
		}
	case Refund:
		f[24] = "200"
	case Reversal:
		f[24] = "400"
	}
	if orig.JournalID != 0 {
		f[56] = orig.MTI + orig.STAN + orig.LocalTime + ledger.SimulationAcquirer
	}
	return nil
}

// send sends m on a fresh connection to the switch and returns its answer.
func (s *Simulator) send(ctx context.Context, m *iso8583.Message) (*iso8583.Message, error) {
	c, err := connection.New(s.cfg.Addr, s.spec, authswitch.ReadLengthHeader, authswitch.WriteLengthHeader,
		connection.SendTimeout(s.cfg.Timeout), connection.ConnectTimeout(s.cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSwitch, err)
	}
	if err := c.Connect(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSwitch, err)
	}
	defer c.Close()
	resp, err := c.Send(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSwitch, err)
	}
	return resp, nil
}

func mtiOf(profile, fn string) string {
	if profile == authswitch.ProfileISO2003 {
		return "2" + fn
	}
	return "0" + fn
}

// stanOf is the 12-digit simulation id as the profile's STAN (iso87: its
// last 6 digits).
func stanOf(profile, id string) string {
	if profile == authswitch.ProfileISO2003 {
		return id
	}
	return id[6:]
}

func newSTAN() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1e12))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%012d", n), nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
