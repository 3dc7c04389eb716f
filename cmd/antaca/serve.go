package main

import (
	"context"
	"flag"
	"io"

	"github.com/antaca/antaca/ledger"
)

// serve runs the servers of cmd ("all", "switch" or "api") until ctx ends.
// The switch and the API are added here as they land.
func serve(ctx context.Context, cmd string, args []string) error {
	var c common
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := c.logger()
	pool, closeFn, err := c.open(ctx, log)
	if err != nil {
		return err
	}
	defer closeFn()
	applied, err := ledger.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	log.Info("migrated", "applied", applied)
	log.Info("ready; the switch and the API are not built yet", "command", cmd)
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}

func demo(ctx context.Context, args []string, stdout io.Writer) error {
	return errNotYet("demo")
}

func errNotYet(what string) error { return &notYetError{what} }

type notYetError struct{ what string }

func (e *notYetError) Error() string { return e.what + " is not built yet" }
