package cardhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/antaca/antaca/ledger"
)

// Card creation limits (issue 21): one user or one partner must not be
// able to create cards, or queue card jobs, faster than the rest can be
// served. Cards are counted over a sliding window (a day per user, an hour
// per partner), card jobs while pending; a synchronous card, an ordered
// physical card and a job each count. The count and the insert run in one
// transaction under advisory locks (the user's, then the partner's), so
// parallel requests cannot pass a limit together.

// Limits on card creation; zero fields of Config get these defaults.
const (
	DefaultCardsPerUserPerDay     = 20
	DefaultCardsPerPartnerPerHour = 5000
	DefaultJobsPerUser            = 5
	DefaultJobsPerPartner         = 500
)

// ErrCardLimit and ErrCardJobLimit refuse a card or a card job past a
// limit (the API answers 429 CARD_LIMIT and CARD_JOB_LIMIT).
var (
	ErrCardLimit    = errors.New("card creation limit reached; try again later")
	ErrCardJobLimit = errors.New("too many card jobs pending; try again when they are done")
)

func (c *Config) quotaDefaults() {
	if c.CardsPerUserPerDay <= 0 {
		c.CardsPerUserPerDay = DefaultCardsPerUserPerDay
	}
	if c.CardsPerPartnerPerHour <= 0 {
		c.CardsPerPartnerPerHour = DefaultCardsPerPartnerPerHour
	}
	if c.JobsPerUser <= 0 {
		c.JobsPerUser = DefaultJobsPerUser
	}
	if c.JobsPerPartner <= 0 {
		c.JobsPerPartner = DefaultJobsPerPartner
	}
}

// quotaCheck is the check the store runs under the quota's locks, in the
// transaction that makes the card or the card job: it refuses one more
// card (job false) or one more card job (job true) of userID under
// partnerID past a limit. A job's own pending row, when it runs, is not
// counted again.
func (h *Host) quotaCheck(userID, partnerID int64, job, running bool) ledger.QuotaCheck {
	return ledger.QuotaCheck{UserID: userID, PartnerID: partnerID, Check: func(q ledger.CardQuota) error {
		userCards, userJobs, partnerCards, partnerJobs := q.UserCards, q.UserJobs, q.PartnerCards, q.PartnerJobs
		if running { // the job being run is one of the pending
			userJobs, partnerJobs = userJobs-1, partnerJobs-1
		}
		c := h.cfg
		switch {
		case job && (userJobs >= c.JobsPerUser || partnerJobs >= c.JobsPerPartner):
			return fmt.Errorf("card job: %d pending for the user, %d for the partner: %w", userJobs, partnerJobs, ErrCardJobLimit)
		case userCards+userJobs >= c.CardsPerUserPerDay || partnerCards+partnerJobs >= c.CardsPerPartnerPerHour:
			return fmt.Errorf("card: %d in a day for the user, %d in an hour for the partner: %w", userCards+userJobs, partnerCards+partnerJobs, ErrCardLimit)
		}
		return nil
	}}
}

// partnerOf returns the partner of the user's program.
func (h *Host) partnerOf(ctx context.Context, userID int64) (int64, error) {
	u, err := h.User(ctx, userID)
	if err != nil {
		return 0, err
	}
	p, err := h.Program(ctx, u.ProgramID)
	if err != nil {
		return 0, err
	}
	return p.PartnerID, nil
}
