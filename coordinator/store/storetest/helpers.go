package storetest

// Assertions of the suite: transactions that must succeed or fail with a sentinel, and
// comparisons that ignore what engines may legitimately change.

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// waitFor is how long the suite waits for something that should happen promptly.
const waitFor = 10 * time.Second

// do runs fn in a transaction and fails the test on error.
func do(t *testing.T, s store.Store, fn func(ctx context.Context, tx store.Tx) error) {
	t.Helper()
	require.NoError(t, try(s, fn), "Tx")
}

// try runs fn in a transaction and returns its error.
func try(s store.Store, fn func(ctx context.Context, tx store.Tx) error) error {
	ctx := context.Background()
	return s.Tx(ctx, func(tx store.Tx) error { return fn(ctx, tx) })
}

// read runs a single read in its own transaction and fails the test on error.
func read[T any](t *testing.T, s store.Store, fn func(ctx context.Context, tx store.Tx) (T, error)) T {
	t.Helper()
	var v T
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		v, err = fn(ctx, tx)
		return err
	})
	return v
}

// createAll stores every record in one transaction with the Tx method create (a method
// expression such as store.Tx.CreateUser).
func createAll[T any](t *testing.T, s store.Store, create func(store.Tx, context.Context, T) error, records ...T) {
	t.Helper()
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, r := range records {
			if err := create(tx, ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// getOne calls the Tx method get of one argument (a method expression such as
// store.Tx.GetUser or store.Tx.ListDevices) in its own transaction and fails the test on error.
func getOne[A, T any](t *testing.T, s store.Store, get func(store.Tx, context.Context, A) (T, error), arg A) T {
	t.Helper()
	return read(t, s, func(ctx context.Context, tx store.Tx) (T, error) { return get(tx, ctx, arg) })
}

// readTx calls the Tx method get of no argument (a method expression such as
// store.Tx.ListUsers or store.Tx.LatestRevision) in its own transaction.
func readTx[T any](t *testing.T, s store.Store, get func(store.Tx, context.Context) (T, error)) T {
	t.Helper()
	return read(t, s, func(ctx context.Context, tx store.Tx) (T, error) { return get(tx, ctx) })
}

// wantGetErr checks that calling the Tx method get with arg fails with target.
func wantGetErr[A, T any](t *testing.T, s store.Store, target error, get func(store.Tx, context.Context, A) (T, error), arg A, what string) {
	t.Helper()
	wantErrTx(t, s, target, what, func(ctx context.Context, tx store.Tx) error {
		_, err := get(tx, ctx, arg)
		return err
	})
}

// wantErr checks that err matches target and carries some context beyond the bare sentinel.
func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	require.ErrorIs(t, err, target, what)
	assert.False(t, err == target, "%s: error %q is the bare sentinel; want it wrapped with context", what, err)
}

// wantErrTx runs fn in a transaction and checks its error.
func wantErrTx(t *testing.T, s store.Store, target error, what string, fn func(ctx context.Context, tx store.Tx) error) {
	t.Helper()
	wantErr(t, try(s, fn), target, what)
}

// equal compares records after normalizing what engines may legitimately change: time zones
// and monotonic readings (compared with time.Equal semantics) and nil versus empty slices.
func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	assert.Equal(t, normalize(want), normalize(got), what)
}

var timeType = reflect.TypeOf(time.Time{})

func normalize(v any) any {
	if v == nil {
		return nil
	}
	rv := reflect.New(reflect.TypeOf(v)).Elem()
	rv.Set(reflect.ValueOf(v))
	normValue(rv)
	return rv.Interface()
}

func normValue(v reflect.Value) {
	if v.Type() == timeType {
		v.Set(reflect.ValueOf(v.Interface().(time.Time).UTC().Round(0)))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				normValue(v.Field(i))
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			c := reflect.New(v.Type().Elem())
			c.Elem().Set(v.Elem())
			normValue(c.Elem())
			v.Set(c)
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		for i := 0; i < c.Len(); i++ {
			normValue(c.Index(i))
		}
		v.Set(c)
	}
}

// ids returns the IDs of records, for order checks.
func ids[T any](items []T, id func(T) string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}

func equalIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != 0 || len(want) != 0 {
		assert.Equal(t, want, got, "%s: IDs", what)
	}
}

// subscribe watches s through a coalescing channel of capacity one: a value is pending after
// any commit that appended events, however many there were.
func subscribe(s store.Store) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	cancel := s.Watch(func(store.Change) {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is pending already
		}
	})
	return ch, cancel
}
