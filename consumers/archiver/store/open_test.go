package store

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// OpenExisting creates nothing: where there is no archive it answers
// ErrNoStore naming where it looked, and leaves the place as it was; an
// archive Open made it opens.
func TestOpenExistingSQLite(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	for _, dsn := range []string{"", filepath.Join(dir, "other.db"), "sqlite:" + filepath.Join(dir, "other.db")} {
		st, err := OpenExisting(ctx, dsn, dir)
		if !errors.Is(err, ErrNoStore) || !strings.Contains(err.Error(), dir) {
			t.Errorf("ARCHIVE_DSN %q: %v, want ErrNoStore naming %s", dsn, err, dir)
		}
		if st != nil {
			t.Errorf("ARCHIVE_DSN %q: a store without an archive", dsn)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenExisting created %s: %v", dir, err)
	}
	st, err := Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	ev := Event{ID: "0123456789abcdef0123456789abcdef", Subject: "enmeshed.transport.messageReceived", Type: "transport.messageReceived",
		Source: "enmeshed-connector", Time: time.Now().UTC(), StreamSeq: 1, Origin: "webhook", Data: []byte(`{}`)}
	if err := st.InsertEvents(ctx, []Event{ev}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = OpenExisting(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Get(ctx, ev.ID); err != nil {
		t.Errorf("the existing archive: %v", err)
	}
}

func TestOpenExistingPostgres(t *testing.T) {
	ctx := context.Background()
	base := postgresDSN(t)
	dsn := freshSchema(t, base)
	u, _ := url.Parse(dsn)
	schema := u.Query().Get("search_path")
	_, err := OpenExisting(ctx, dsn, "")
	if !errors.Is(err, ErrNoStore) || !strings.Contains(err.Error(), schema) {
		t.Errorf("empty database: %v, want ErrNoStore naming schema %s", err, schema)
	}
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var created bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&created); err != nil || created {
		t.Fatalf("OpenExisting created schema %s (%v)", schema, err)
	}
	st, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	ex, err := OpenExisting(ctx, dsn, "")
	if err != nil {
		t.Fatalf("the existing archive: %v", err)
	}
	ex.Close()
}

// The writer connection's settings: durability as documented
// (synchronous=FULL in WAL mode), and the checkpoint interval.
func TestSQLiteWriterSettings(t *testing.T) {
	s, err := OpenSQLite(filepath.Join(t.TempDir(), DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"wal_autocheckpoint", "1000"},
		{"secure_delete", "1"},
	} {
		var got string
		if err := s.w.QueryRow("PRAGMA " + c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
}
