package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/antaca/antaca/ledger"
)

// Money in (DESIGN section 6 and the reload row of section 8): a partner
// reloads its users' balances with its own reference; an Admin reloads user
// and partner balances with reason and bank reference, four eyes above the
// threshold; the customer channel reloads nothing. The exceptions queue and
// the approvals are read by every admin role and decided by Admins.

// registerMoneyRoutes registers the four-eyes approvals and the exceptions
// queue; the reload routes sit with the balances (cards.go, partners.go).
func (s *Server) registerMoneyRoutes() {
	adm := func(method, path string, roles []Role, h handlerFunc) {
		s.route(Route{Method: method, Pattern: "/admin" + path, Channel: ChannelAdmin, Roles: roles, Encryption: EncryptionOptional}, h)
	}
	adm("GET", "/approvals", rolesAll, s.listApprovals)
	adm("GET", "/approvals/{approvalId}", rolesAll, s.getApproval)
	adm("POST", "/approvals/{approvalId}/approve", rolesAdmin, s.decideApproval(true))
	adm("POST", "/approvals/{approvalId}/reject", rolesAdmin, s.decideApproval(false))
	adm("GET", "/exceptions", rolesAll, s.listExceptions)
	adm("POST", "/exceptions/{exceptionId}/resolve", rolesAdmin, s.resolveException)
}

type reloadInput struct {
	Amount    amountText `json:"amount"`
	Reference string     `json:"reference"`
	Reason    string     `json:"reason"`
}

// refuseCustomerReload answers the customer channel's reload: a cardholder
// cannot vouch for money.
func (s *Server) refuseCustomerReload(q *request) (int, any, error) {
	return 0, nil, errorf(http.StatusForbidden, CodeReloadNotAllowed,
		"a cardholder cannot reload a balance: money comes in through the partner or an Admin")
}

// reload credits a balance from the partner (its reference required,
// unique per partner) or asks an Admin reload (reason and reference
// required; posted at once or waiting for a second Admin). It returns the
// status and the body: 200 with the posting, or 202 with the approval.
func (s *Server) reload(q *request, accountID int64, currency string) (int, map[string]any, error) {
	var in reloadInput
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	exp, err := s.exponent(q.Context(), currency)
	if err != nil {
		return 0, nil, err
	}
	amount, err := parseAmount(in.Amount, exp)
	if err != nil {
		return 0, nil, err
	}
	if err := checkText("reference", in.Reference, 1, 64); err != nil {
		return 0, nil, err
	}
	p := q.principal
	if p.Channel == ChannelSecure && p.Kind == KindPartner {
		post, err := s.host.PartnerReload(q.Context(), p.PartnerID, accountID, amount, in.Reference)
		if err != nil {
			return 0, nil, err
		}
		s.log.Info("balance reloaded", "balance_id", accountID, "amount", amount, "currency", currency, "posting_id", post.ID, "by", p.scope())
		return http.StatusOK, map[string]any{"postingId": post.ID}, nil
	}
	if p.Channel != ChannelAdmin || p.Role != RoleAdmin {
		return 0, nil, errorf(http.StatusForbidden, CodeReloadNotAllowed, "only a partner or an Admin reloads a balance")
	}
	if err := checkText("reason", in.Reason, 1, 200); err != nil {
		return 0, nil, err
	}
	a, err := s.host.AdminReload(q.Context(), accountID, amount, p.scope(), in.Reason, in.Reference)
	if err != nil {
		return 0, nil, err
	}
	s.metrics.approvals.WithLabelValues(a.Kind, a.Status).Inc()
	v, err := s.approvalOf(q.Context(), a)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("admin reload", "balance_id", accountID, "amount", amount, "currency", currency, "approval_id", a.ID, "status", a.Status, "by", p.scope())
	if a.Status == ledger.ApprovalPending {
		q.header.Set("Location", "/admin/approvals/"+strconv.FormatInt(a.ID, 10))
		return http.StatusAccepted, map[string]any{"approval": v}, nil
	}
	return http.StatusOK, map[string]any{"postingId": a.PostingID, "approval": v}, nil
}

// approvalView is an approval as the API shows it.
type approvalView struct {
	ID           int64  `json:"id"`
	Kind         string `json:"kind"`
	Status       string `json:"status"`
	BalanceID    int64  `json:"balanceId,omitempty"`
	BalanceClass string `json:"balanceClass,omitempty"`
	ExceptionID  int64  `json:"exceptionId,omitempty"`
	Resolution   string `json:"resolution,omitempty"`
	Currency     string `json:"currency"`
	Amount       string `json:"amount"`
	Reason       string `json:"reason,omitempty"`
	Reference    string `json:"reference"`
	RequestedBy  string `json:"requestedBy"`
	RequestedAt  string `json:"requestedAt"`
	DecidedBy    string `json:"decidedBy,omitempty"`
	DecidedAt    string `json:"decidedAt,omitempty"`
	PostingID    int64  `json:"postingId,omitempty"`
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func (s *Server) approvalOf(ctx context.Context, a ledger.Approval) (approvalView, error) {
	exp, err := s.exponent(ctx, a.Currency)
	if err != nil {
		return approvalView{}, err
	}
	return approvalView{ID: a.ID, Kind: a.Kind, Status: a.Status, BalanceID: a.AccountID, BalanceClass: a.BalanceClass,
		ExceptionID: a.ExceptionID, Resolution: a.Resolution, Currency: a.Currency, Amount: formatAmount(a.Amount, exp),
		Reason: a.Reason, Reference: a.Reference, RequestedBy: a.RequestedBy, RequestedAt: rfc3339(a.RequestedAt),
		DecidedBy: a.DecidedBy, DecidedAt: rfc3339(a.DecidedAt), PostingID: a.PostingID}, nil
}

func (s *Server) approvalsOf(ctx context.Context, as []ledger.Approval) ([]approvalView, error) {
	out := make([]approvalView, 0, len(as))
	for _, a := range as {
		v, err := s.approvalOf(ctx, a)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// listApprovals lists approvals: ?status=pending (default), posted,
// approved, rejected or all.
func (s *Server) listApprovals(q *request) (int, any, error) {
	status := q.URL.Query().Get("status")
	switch status {
	case "":
		status = ledger.ApprovalPending
	case "all":
		status = ""
	case ledger.ApprovalPending, ledger.ApprovalPosted, ledger.ApprovalApproved, ledger.ApprovalRejected:
	default:
		return 0, nil, validation("status must be pending, posted, approved, rejected or all")
	}
	as, err := s.host.Approvals(q.Context(), status)
	if err != nil {
		return 0, nil, err
	}
	vs, err := s.approvalsOf(q.Context(), as)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"approvals": vs}, nil
}

func (s *Server) getApproval(q *request) (int, any, error) {
	id, err := pathID(q.Request, "approvalId")
	if err != nil {
		return 0, nil, err
	}
	a, err := s.host.Approval(q.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	v, err := s.approvalOf(q.Context(), a)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, v, nil
}

// decideApproval approves (a different Admin than the one who asked) or
// rejects a pending approval.
func (s *Server) decideApproval(approve bool) handlerFunc {
	return func(q *request) (int, any, error) {
		id, err := pathID(q.Request, "approvalId")
		if err != nil {
			return 0, nil, err
		}
		a, err := s.host.Decide(q.Context(), id, q.principal.scope(), approve)
		if err != nil {
			return 0, nil, err
		}
		s.metrics.approvals.WithLabelValues(a.Kind, a.Status).Inc()
		s.log.Info("approval decided", "approval_id", a.ID, "kind", a.Kind, "status", a.Status, "by", q.principal.scope())
		v, err := s.approvalOf(q.Context(), a)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]any{"approval": v}, nil
	}
}

// exceptionView is an exception as the API shows it: amounts in major
// units, the card masked, the journal by ids.
type exceptionView struct {
	ID                  int64  `json:"id"`
	Kind                string `json:"kind"`
	Status              string `json:"status"`
	Currency            string `json:"currency"`
	Amount              string `json:"amount"`
	Receivable          string `json:"receivable"`
	CardID              int64  `json:"cardId,omitempty"`
	Card                string `json:"card,omitempty"`
	BalanceID           int64  `json:"balanceId,omitempty"`
	ProgramID           int64  `json:"programId,omitempty"`
	HoldID              int64  `json:"holdId,omitempty"`
	PostingID           int64  `json:"postingId,omitempty"`
	JournalID           int64  `json:"journalId,omitempty"`
	Detail              string `json:"detail,omitempty"`
	CreatedAt           string `json:"createdAt"`
	ResolvedAt          string `json:"resolvedAt,omitempty"`
	ResolvedBy          string `json:"resolvedBy,omitempty"`
	ApprovedBy          string `json:"approvedBy,omitempty"`
	ResolutionPostingID int64  `json:"resolutionPostingId,omitempty"`
	PendingApprovalID   int64  `json:"pendingApprovalId,omitempty"`
}

func (s *Server) exceptionOf(ctx context.Context, x ledger.Exception) (exceptionView, error) {
	exp, err := s.exponent(ctx, x.Currency)
	if err != nil {
		return exceptionView{}, err
	}
	return exceptionView{ID: x.ID, Kind: x.Kind, Status: x.Status, Currency: x.Currency, Amount: formatAmount(x.Amount, exp),
		Receivable: formatAmount(x.Receivable, exp), CardID: x.CardID, Card: x.MaskedPAN, BalanceID: x.AccountID,
		ProgramID: x.ProgramID, HoldID: x.HoldID, PostingID: x.PostingID, JournalID: x.JournalID, Detail: x.Detail,
		CreatedAt: rfc3339(x.CreatedAt), ResolvedAt: rfc3339(x.ResolvedAt), ResolvedBy: x.ResolvedBy, ApprovedBy: x.ApprovedBy,
		ResolutionPostingID: x.ResolutionPostingID, PendingApprovalID: x.PendingApprovalID}, nil
}

// listExceptions lists the exceptions queue (?status=open, the default,
// closed or all) and the approvals pending (four-eyes reloads and
// resolutions).
func (s *Server) listExceptions(q *request) (int, any, error) {
	state := q.URL.Query().Get("status")
	switch state {
	case "":
		state = "open"
	case "all":
		state = ""
	case "open", "closed":
	default:
		return 0, nil, validation("status must be open, closed or all")
	}
	xs, err := s.host.Exceptions(q.Context(), state)
	if err != nil {
		return 0, nil, err
	}
	out := make([]exceptionView, 0, len(xs))
	for _, x := range xs {
		v, err := s.exceptionOf(q.Context(), x)
		if err != nil {
			return 0, nil, err
		}
		out = append(out, v)
	}
	as, err := s.host.Approvals(q.Context(), ledger.ApprovalPending)
	if err != nil {
		return 0, nil, err
	}
	vs, err := s.approvalsOf(q.Context(), as)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"exceptions": out, "pendingApprovals": vs}, nil
}

// resolveException resolves an exception (charged_back, written_off,
// rejected: 200) or asks a second Admin (recovered, released: 202 with the
// approval).
func (s *Server) resolveException(q *request) (int, any, error) {
	id, err := pathID(q.Request, "exceptionId")
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Resolution string `json:"resolution"`
		Reference  string `json:"reference"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	switch in.Resolution {
	case ledger.ResolveRecovered, ledger.ResolveChargedBack, ledger.ResolveWrittenOff, ledger.ResolveReleased, ledger.ResolveRejected:
	default:
		return 0, nil, validation("resolution must be recovered, charged_back, written_off, released or rejected")
	}
	if in.Reference != "" {
		if err := checkText("reference", in.Reference, 1, 64); err != nil {
			return 0, nil, err
		}
	}
	x, a, err := s.host.ResolveException(q.Context(), id, in.Resolution, q.principal.scope(), in.Reference)
	if err != nil {
		return 0, nil, err
	}
	xv, err := s.exceptionOf(q.Context(), x)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("exception resolution", "exception_id", id, "resolution", in.Resolution, "approval_id", a.ID, "by", q.principal.scope())
	if a.ID == 0 {
		return http.StatusOK, map[string]any{"exception": xv}, nil
	}
	s.metrics.approvals.WithLabelValues(a.Kind, a.Status).Inc()
	av, err := s.approvalOf(q.Context(), a)
	if err != nil {
		return 0, nil, err
	}
	q.header.Set("Location", "/admin/approvals/"+strconv.FormatInt(a.ID, 10))
	return http.StatusAccepted, map[string]any{"exception": xv, "approval": av}, nil
}
