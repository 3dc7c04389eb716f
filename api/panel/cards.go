package panel

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/antaca/antaca/cardhost"
)

// ---- Cards ----

// cardOf loads the path's card and its program; a viewer sees only their
// partner's cards.
func (p *Panel) cardOf(c *call) (cardhost.Card, cardhost.Program, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return cardhost.Card{}, cardhost.Program{}, err
	}
	cd, err := p.cfg.Host.Card(c.ctx(), id)
	if err != nil {
		return cardhost.Card{}, cardhost.Program{}, err
	}
	prog, err := p.cfg.Host.Program(c.ctx(), cd.ProgramID)
	if err != nil {
		return cardhost.Card{}, cardhost.Program{}, err
	}
	if c.s.Role == RolePartner && prog.PartnerID != c.s.PartnerID {
		return cardhost.Card{}, cardhost.Program{}, errNotFound
	}
	return cd, prog, nil
}

type lockOption struct {
	Code         int
	Text         string
	Irreversible bool
}

func lockOptions() []lockOption {
	var out []lockOption
	for code := cardhost.LockLost; code <= cardhost.LockCardReplaced; code++ {
		out = append(out, lockOption{Code: int(code), Text: lockText(code), Irreversible: code.Irreversible()})
	}
	return out
}

func (p *Panel) card(c *call) error {
	cd, prog, err := p.cardOf(c)
	if err != nil {
		return err
	}
	evs, err := p.cfg.Host.History(c.ctx(), cd.ID)
	if err != nil {
		return err
	}
	staffer := c.is(staff...)
	data := map[string]any{
		"Card": cardRowOf(cd), "C": cd, "Program": prog, "Events": evs, "LockOptions": lockOptions(),
		"Removed":   cd.State == cardhost.StateRemoved,
		"CanLock":   staffer && cd.State != cardhost.StateRemoved,
		"CanUnlock": staffer && cd.LockCode != cardhost.LockNone && !cd.LockCode.Irreversible() && (cd.LockCode != cardhost.LockSuspectedFraud || c.is(adminManager...)),
		"Locked":    cd.LockCode != cardhost.LockNone, "Irreversible": cd.LockCode.Irreversible(),
		"CanActivate": staffer && cd.State == cardhost.StateInactive,
		"CanLink":     staffer && cd.State == cardhost.StateOrdered,
		"CanPrint":    staffer && prog.DigitalFirst && cd.Type == cardhost.Virtual && cd.State == cardhost.StateActive,
		"CanCVV":      staffer && cd.State != cardhost.StateRemoved,
		"CanRemove":   c.is(adminOnly...) && cd.State != cardhost.StateRemoved,
		"Staff":       staffer,
	}
	return c.page("card", fmt.Sprintf("Card %d", cd.ID), data)
}

func (p *Panel) cardAction(c *call) error {
	cd, _, err := p.cardOf(c)
	if err != nil {
		return err
	}
	ctx, a := c.ctx(), c.actor()
	var done string
	switch c.r.PathValue("action") {
	case "lock":
		code, _ := strconv.Atoi(c.r.PostFormValue("code"))
		if !cardhost.LockCode(code).Valid() {
			return badInput("Choose a lock reason code from 1 to 8.")
		}
		why := strings.TrimSpace(c.r.PostFormValue("reason"))
		if len(why) > 500 || strings.ContainsAny(why, "\r\n\x00") {
			return badInput("The reason must be at most 500 characters on one line.")
		}
		_, err = p.cfg.Host.Lock(ctx, cd.ID, cardhost.LockCode(code), a, why)
		done = "locked"
	case "unlock":
		// DESIGN 8: a code-7 lock is lifted by the partner or an Admin or
		// Manager only.
		if cd.LockCode == cardhost.LockSuspectedFraud && !c.is(adminManager...) {
			c.status(http.StatusForbidden, "A suspected-fraud lock (code 7) is lifted by an Admin or Manager.")
			return nil
		}
		_, err = p.cfg.Host.Unlock(ctx, cd.ID, a)
		done = "unlocked"
	case "activate":
		_, err = p.cfg.Host.Activate(ctx, cd.ID, a)
		done = "activated"
	case "link":
		_, err = p.cfg.Host.LinkCard(ctx, cd.ID, a)
		done = "linked"
	case "print":
		_, err = p.cfg.Host.PrintVirtual(ctx, cd.ID, a)
		done = "printed"
	case "cvv":
		// The new CVC2 goes to the cardholder's channels, never to a page.
		_, _, err = p.cfg.Host.ResetCVV(ctx, cd.ID, a)
		done = "cvv"
	case "remove":
		if !c.is(adminOnly...) {
			c.status(http.StatusForbidden, "Your role may not do this.")
			return nil
		}
		_, err = p.cfg.Host.Remove(ctx, cd.ID, a)
		done = "removed"
	default:
		return errNotFound
	}
	if err != nil {
		return err
	}
	p.log.Info("panel: card action", "card_id", cd.ID, "action", done, "admin", c.s.AdminID)
	return c.done(fmt.Sprintf("/panel/cards/%d", cd.ID), done)
}
