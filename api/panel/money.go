package panel

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/antaca/antaca/ledger"
)

// The exceptions queue and the four-eyes approvals (DESIGN section 6): the
// same reads and decisions as the API's /admin/exceptions and
// /admin/approvals, through the card host. Every admin role reads them;
// Admins resolve, approve and reject.

// exponents caches the currencies' decimals for one page.
type exponents struct {
	p   *Panel
	c   *call
	exp map[string]int
}

func (p *Panel) exponents(c *call) *exponents { return &exponents{p: p, c: c, exp: map[string]int{}} }

func (e *exponents) format(minor int64, currency string) (string, error) {
	exp, ok := e.exp[currency]
	if !ok {
		var err error
		if exp, err = e.p.cfg.Host.CurrencyExponent(e.c.ctx(), currency); err != nil {
			return "", err
		}
		e.exp[currency] = exp
	}
	return formatAmount(minor, exp), nil
}

// minute is a UTC time to the minute for a table, empty when zero.
func minute(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04")
}

// resolutionsOf are the resolutions an exception of kind takes, as
// ledger.ResolveException allows them.
func resolutionsOf(kind string) []string {
	if kind == ledger.ExceptionBlindRefund {
		return []string{ledger.ResolveReleased, ledger.ResolveRejected}
	}
	return []string{ledger.ResolveWrittenOff, ledger.ResolveChargedBack, ledger.ResolveRecovered}
}

type exceptionRow struct {
	ledger.Exception
	AmountText, ReceivableText, Created, Resolved string
	Resolutions                                   []string
}

// exceptions lists the queue: ?status=open (the default), closed or all.
func (p *Panel) exceptions(c *call) error {
	status := c.r.URL.Query().Get("status")
	state := status
	switch status {
	case "":
		status, state = "open", "open"
	case "all":
		state = ""
	case "open", "closed":
	default:
		return badInput("The status is open, closed or all.")
	}
	xs, err := p.cfg.Host.Exceptions(c.ctx(), state)
	if err != nil {
		return err
	}
	ex := p.exponents(c)
	rows := make([]exceptionRow, 0, len(xs))
	for _, x := range xs {
		r := exceptionRow{Exception: x, Created: minute(x.CreatedAt), Resolved: minute(x.ResolvedAt), Resolutions: resolutionsOf(x.Kind)}
		// The ledger masks the card as first6…last4; never more on a page.
		r.MaskedPAN = maskedText(x.MaskedPAN)
		if r.AmountText, err = ex.format(x.Amount, x.Currency); err != nil {
			return err
		}
		if r.ReceivableText, err = ex.format(x.Receivable, x.Currency); err != nil {
			return err
		}
		rows = append(rows, r)
	}
	return c.page("exceptions", "Exceptions", map[string]any{"Rows": rows, "Status": status, "CanResolve": c.is(adminOnly...)})
}

// resolveException resolves an exception as the signed-in Admin: charged
// back, written off and rejected at once; recovered and released wait for a
// second Admin on the approvals page.
func (p *Panel) resolveException(c *call) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	res := c.r.PostFormValue("resolution")
	switch res {
	case ledger.ResolveRecovered, ledger.ResolveChargedBack, ledger.ResolveWrittenOff, ledger.ResolveReleased, ledger.ResolveRejected:
	default:
		return badInput("The resolution is recovered, charged_back, written_off, released or rejected.")
	}
	ref := strings.TrimSpace(c.r.PostFormValue("reference"))
	if len(ref) > 64 || strings.ContainsAny(ref, "\r\n\x00") {
		return badInput("The reference is at most 64 characters on one line.")
	}
	if ref == "" && (res == ledger.ResolveRecovered || res == ledger.ResolveChargedBack) {
		return badInput("A recovery needs the bank's reference of the money received, a charge-back the scheme's.")
	}
	_, ap, err := p.cfg.Host.ResolveException(c.ctx(), id, res, c.admin(), ref)
	if err != nil {
		return err
	}
	p.log.Info("panel: exception resolution", "exception_id", id, "resolution", res, "approval_id", ap.ID, "admin", c.s.AdminID)
	if ap.ID != 0 {
		return c.done("/panel/approvals", "resolve_pending")
	}
	return c.done("/panel/exceptions", "resolved")
}

type approvalRow struct {
	ledger.Approval
	AmountText, Requested, Decided string
	Requester, Decider             string
	What, Link                     string
	Mine                           bool // asked by the signed-in Admin: they may not approve it
}

// approvals lists four-eyes approvals: ?status=pending (the default),
// posted, approved, rejected or all.
func (p *Panel) approvals(c *call) error {
	status := c.r.URL.Query().Get("status")
	filter := status
	switch status {
	case "":
		status, filter = ledger.ApprovalPending, ledger.ApprovalPending
	case "all":
		filter = ""
	case ledger.ApprovalPending, ledger.ApprovalPosted, ledger.ApprovalApproved, ledger.ApprovalRejected:
	default:
		return badInput("The status is pending, posted, approved, rejected or all.")
	}
	as, err := p.cfg.Host.Approvals(c.ctx(), filter)
	if err != nil {
		return err
	}
	names, err := p.cfg.Reader.AdminNames(c.ctx())
	if err != nil {
		return err
	}
	who := func(actor string) string {
		if id, err := strconv.ParseInt(strings.TrimPrefix(actor, "admin:"), 10, 64); err == nil && names[id] != "" {
			return names[id] + " (" + actor + ")"
		}
		return actor
	}
	ex := p.exponents(c)
	rows := make([]approvalRow, 0, len(as))
	for _, a := range as {
		r := approvalRow{Approval: a, Requested: minute(a.RequestedAt), Decided: minute(a.DecidedAt), Requester: who(a.RequestedBy),
			Decider: who(a.DecidedBy), Mine: a.RequestedBy == c.admin()}
		if r.AmountText, err = ex.format(a.Amount, a.Currency); err != nil {
			return err
		}
		switch a.Kind {
		case "reload":
			r.What = fmt.Sprintf("reload of %s balance #%d", a.BalanceClass, a.AccountID)
			if r.Link, err = p.balanceLink(c, a.AccountID); err != nil {
				return err
			}
		case "exception":
			r.What = fmt.Sprintf("exception #%d as %s", a.ExceptionID, a.Resolution)
			r.Link = "/panel/exceptions?status=all"
		}
		rows = append(rows, r)
	}
	return c.page("approvals", "Approvals", map[string]any{"Rows": rows, "Status": status, "CanDecide": c.is(adminOnly...)})
}

// balanceLink is the page of a balance's owner: the customer, or the
// partner for an Admin.
func (p *Panel) balanceLink(c *call, accountID int64) (string, error) {
	a, err := p.cfg.Host.Account(c.ctx(), accountID)
	switch {
	case err != nil:
		return "", err
	case a.UserID > 0:
		return fmt.Sprintf("/panel/customers/%d?balance=%d", a.UserID, a.ID), nil
	case a.PartnerID > 0 && c.is(adminOnly...):
		return fmt.Sprintf("/panel/partners/%d", a.PartnerID), nil
	}
	return "", nil
}

// decide approves or rejects a pending approval as the signed-in Admin.
// The Admin who asked may reject (withdraw) but not approve.
func (p *Panel) decide(c *call) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	var approve bool
	switch c.r.PathValue("decision") {
	case "approve":
		approve = true
	case "reject":
	default:
		return errNotFound
	}
	a, err := p.cfg.Host.Decide(c.ctx(), id, c.admin(), approve)
	if errors.Is(err, ledger.ErrSameApprover) {
		return &InputError{Status: http.StatusForbidden, Message: "Refused (SAME_APPROVER): you asked for this; four eyes need another Admin to approve it. Nothing was posted."}
	}
	if err != nil {
		return err
	}
	p.log.Info("panel: approval decided", "approval_id", a.ID, "kind", a.Kind, "status", a.Status, "admin", c.s.AdminID)
	if approve {
		return c.done("/panel/approvals?status=all", "approved")
	}
	return c.done("/panel/approvals?status=all", "rejected")
}
