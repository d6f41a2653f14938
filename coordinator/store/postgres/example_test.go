package postgres_test

import (
	"context"
	"log"
	"log/slog"
	"os"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/postgres"
)

// Every replica of a coordinator opens the same database; each hears the others' commits
// through Watch.
func ExampleOpen() {
	ctx := context.Background()
	st, err := postgres.Open(ctx, os.Getenv("NEXODUS_DB"), postgres.WithLogger(slog.Default()))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	cancel := st.Watch(func(c store.Change) {
		if c.OrganizationID == "" {
			return // notifications may have been lost: re-read everything
		}
		// the log of c.OrganizationID grew to c.Revision
	})
	defer cancel()
	var latest int64
	err = st.View(ctx, func(tx store.Tx) error {
		latest, err = tx.LatestRevision(ctx)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = latest
}
