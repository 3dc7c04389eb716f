package main

import (
	"flag"

	"github.com/antaca/antaca/api"
	"github.com/antaca/antaca/cardhost"
)

// limitFlags are the limits that keep one client from starving the others
// (issue 21); zero means the package's default.
type limitFlags struct {
	cardsPerUserDay     int
	cardsPerPartnerHour int
	jobsPerUser         int
	jobsPerPartner      int
	hashConcurrency     int
	loginBurst          int
}

func (l *limitFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&l.cardsPerUserDay, "cards-per-user-day", cardhost.DefaultCardsPerUserPerDay, "cards one user may get in 24 h (pending card jobs count); past it 429 CARD_LIMIT")
	fs.IntVar(&l.cardsPerPartnerHour, "cards-per-partner-hour", cardhost.DefaultCardsPerPartnerPerHour, "cards one partner's users may get in an hour; past it 429 CARD_LIMIT")
	fs.IntVar(&l.jobsPerUser, "card-jobs-per-user", cardhost.DefaultJobsPerUser, "async card jobs pending per user; past it 429 CARD_JOB_LIMIT")
	fs.IntVar(&l.jobsPerPartner, "card-jobs-per-partner", cardhost.DefaultJobsPerPartner, "async card jobs pending per partner; past it 429 CARD_JOB_LIMIT")
	fs.IntVar(&l.hashConcurrency, "hash-concurrency", 0, "admin password hashes (PBKDF2) computed at once; 0: GOMAXPROCS/4, at least 1")
	fs.IntVar(&l.loginBurst, "login-burst", 0, "admin login attempts per source address at once before 429 (one more every 6 s); 0: 10")
}

func (l *limitFlags) host(c cardhost.Config) cardhost.Config {
	c.CardsPerUserPerDay, c.CardsPerPartnerPerHour = l.cardsPerUserDay, l.cardsPerPartnerHour
	c.JobsPerUser, c.JobsPerPartner = l.jobsPerUser, l.jobsPerPartner
	return c
}

func (l *limitFlags) api(c api.Config) api.Config {
	c.HashConcurrency, c.LoginSourceBurst = l.hashConcurrency, l.loginBurst
	return c
}
