package cardhost

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestLockRulesTable runs every lock code (none, 1-8) against every action.
// Expected outcomes are written out from the reference document's rules:
// codes 1, 2, 5 and 8 are irreversible (the card takes nothing but removal);
// 3, 4, 6 and 7 can be replaced, unlocked, and do not stop other actions;
// an unlocked card cannot be unlocked; every lock declines an authorisation
// with its own reason.
func TestLockRulesTable(t *testing.T) {
	const ok, irr, notLocked = "ok", "irreversible", "not_locked"
	actions := []Action{ActLock, ActUnlock, ActLockOutside, ActActivate, ActResetCVV, ActSetPIN, ActPrintVirtual, ActRemove}
	want := map[LockCode][]string{ //  lock   unlock     outside activate cvv set_pin print remove
		LockNone:              {ok, notLocked, ok, ok, ok, ok, ok, ok},
		LockLost:              {irr, irr, irr, irr, irr, irr, irr, ok},
		LockStolen:            {irr, irr, irr, irr, irr, irr, irr, ok},
		LockPendingQuery:      {ok, ok, ok, ok, ok, ok, ok, ok},
		LockCardConsolidation: {ok, ok, ok, ok, ok, ok, ok, ok},
		LockCardInactive:      {irr, irr, irr, irr, irr, irr, irr, ok},
		LockPINTriesExceeded:  {ok, ok, ok, ok, ok, ok, ok, ok},
		LockSuspectedFraud:    {ok, ok, ok, ok, ok, ok, ok, ok},
		LockCardReplaced:      {irr, irr, irr, irr, irr, irr, irr, ok},
	}
	wantAuth := map[LockCode]Reason{
		LockNone: Approved, LockLost: CardLost, LockStolen: CardStolen, LockPendingQuery: PendingQuery,
		LockCardConsolidation: CardConsolidation, LockCardInactive: CardInactive, LockPINTriesExceeded: PINTriesExceeded,
		LockSuspectedFraud: SuspectedFraud, LockCardReplaced: CardReplaced,
	}
	// The card each action is tried on: the type and state where only the
	// lock can stand in its way.
	cardFor := func(a Action, lock LockCode) Card {
		c := Card{ID: 1, ProgramID: 1, Type: Virtual, State: StateActive, LockCode: lock, Expiry: "3012"}
		switch a {
		case ActActivate:
			c.Type, c.State = Physical, StateInactive
		case ActSetPIN:
			c.Type = Physical
		}
		return c
	}
	outcome := func(err error) string {
		switch {
		case err == nil:
			return ok
		case errors.Is(err, ErrIrreversibleLock):
			return irr
		case errors.Is(err, ErrNotLocked):
			return notLocked
		}
		return err.Error()
	}
	for lock := LockNone; lock <= LockCardReplaced; lock++ {
		for i, a := range actions {
			t.Run(fmt.Sprintf("code%d/%s", lock, a), func(t *testing.T) {
				c := cardFor(a, lock)
				got, err := Transition(c, a, LockSuspectedFraud, true)
				if o := outcome(err); o != want[lock][i] {
					t.Fatalf("got %s, want %s", o, want[lock][i])
				}
				if err != nil {
					if got != c {
						t.Errorf("a refused action changed the card: got %+v, want %+v", got, c)
					}
					return
				}
				switch a {
				case ActLock, ActLockOutside:
					if got.LockCode != LockSuspectedFraud {
						t.Errorf("lock code = %d, want 7", got.LockCode)
					}
				case ActUnlock:
					if got.LockCode != LockNone || got.PINTries != 0 {
						t.Errorf("after unlock: lock %d, PIN tries %d; want 0, 0", got.LockCode, got.PINTries)
					}
				case ActActivate:
					if got.State != StateActive || got.LockCode != lock {
						t.Errorf("after activate: state %s lock %d; want active, lock kept %d", got.State, got.LockCode, lock)
					}
				case ActResetCVV:
					if got.CVCGeneration != c.CVCGeneration+1 {
						t.Errorf("CVC generation %d, want %d", got.CVCGeneration, c.CVCGeneration+1)
					}
				case ActPrintVirtual:
					if got.Type != DigitalFirst {
						t.Errorf("type %s, want digital_first", got.Type)
					}
				case ActRemove:
					if got.State != StateRemoved {
						t.Errorf("state %s, want removed", got.State)
					}
					if _, err := Transition(got, ActUnlock, 0, true); !errors.Is(err, ErrCardRemoved) {
						t.Errorf("action on a removed card: got %v, want ErrCardRemoved", err)
					}
				}
			})
		}
		t.Run(fmt.Sprintf("code%d/authorise", lock), func(t *testing.T) {
			c := Card{ID: 1, ProgramID: 1, Type: Virtual, State: StateActive, LockCode: lock, Expiry: "3012"}
			prog := &Program{ID: 1, Currency: "EUR", CurrencyNumeric: "978", CardTypes: []CardType{Virtual}}
			req := &AuthRequest{Class: ClassAuthorization, ProcessingCode: ProcPurchase, Amount: 100, Currency: "978", Expiry: "3012"}
			got := Decide(DecideInput{Card: &c, Program: prog, Req: req, Now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), PAN: "5399990000000000"}, stubVerifier{})
			if got.Reason != wantAuth[lock] {
				t.Fatalf("reason %s, want %s", got.Reason, wantAuth[lock])
			}
		})
	}
}

func TestTransitionTypeAndStateRules(t *testing.T) {
	cases := []struct {
		name string
		card Card
		a    Action
		df   bool
		want error
	}{
		{"link needs physical", Card{Type: Virtual, State: StateActive}, ActLink, false, ErrCardType},
		{"link needs ordered", Card{Type: Physical, State: StateActive}, ActLink, false, ErrCardState},
		{"activate needs linked", Card{Type: Physical, State: StateOrdered}, ActActivate, false, ErrCardState},
		{"activate virtual", Card{Type: Virtual, State: StateActive}, ActActivate, false, ErrCardType},
		{"activate digital-first", Card{Type: DigitalFirst, State: StateActive}, ActActivate, false, ErrCardType},
		{"reset cvv physical", Card{Type: Physical, State: StateActive}, ActResetCVV, false, ErrCardType},
		{"reset cvv digital-first", Card{Type: DigitalFirst, State: StateActive}, ActResetCVV, false, nil},
		{"set pin virtual", Card{Type: Virtual, State: StateActive}, ActSetPIN, false, ErrCardType},
		{"set pin digital-first", Card{Type: DigitalFirst, State: StateActive}, ActSetPIN, false, nil},
		{"print outside digital first", Card{Type: Virtual, State: StateActive}, ActPrintVirtual, false, ErrNotDigitalFirst},
		{"print physical", Card{Type: Physical, State: StateActive}, ActPrintVirtual, true, ErrCardType},
		{"print twice", Card{Type: DigitalFirst, State: StateActive}, ActPrintVirtual, true, ErrCardType},
		{"lock code 0", Card{Type: Virtual, State: StateActive}, ActLock, false, ErrInvalidLockCode},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code := LockCode(0)
			_, err := Transition(tc.card, tc.a, code, tc.df)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
