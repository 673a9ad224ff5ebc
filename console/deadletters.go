package console

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go/jetstream"
)

// deadLettersData is the dead-letter list's.
type deadLettersData struct {
	Consumer string
	Letters  []consumers.DeadLetter
	Counts   []consumerCount // dead letters per consumer
	Err      string
}

type consumerCount struct {
	Name  string
	Count int
}

// deadLetters lists the dead letters, all or one consumer's, as `eventmesh
// dlq ls`.
func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request) {
	d := deadLettersData{Consumer: r.URL.Query().Get("consumer")}
	if d.Consumer != "" {
		if err := router.ValidateToken(d.Consumer); err != nil {
			c.fail(w, r, http.StatusBadRequest, fmt.Errorf("consumer: %w", err))
			return
		}
	}
	all, err := admin.SelectDeadLetters(r.Context(), c.deps.JS, c.deps.Subjects, admin.Selection{})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		d.Err = err.Error()
	}
	count := map[string]int{}
	for _, dl := range all {
		count[dl.Consumer]++
		if d.Consumer == "" || dl.Consumer == d.Consumer {
			d.Letters = append(d.Letters, dl)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(count)) {
		d.Counts = append(d.Counts, consumerCount{n, count[n]})
	}
	c.render(w, r, http.StatusOK, "deadletters", "Dead letters", d)
}

// deadLetterData is one dead letter's page.
type deadLetterData struct {
	DL      consumers.DeadLetter
	Headers []header
	Body    string
}

// deadLetter shows one, as `eventmesh dlq show`.
func (c *Console) deadLetter(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		c.fail(w, r, http.StatusBadRequest, fmt.Errorf("dead letter %q: want its sequence number", r.PathValue("seq")))
		return
	}
	dl, err := admin.GetDeadLetter(r.Context(), c.deps.JS, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("no dead letter %d: replayed or purged?", seq))
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	d := deadLetterData{DL: dl}
	for _, k := range slices.Sorted(maps.Keys(dl.Header)) {
		for _, v := range dl.Header[k] {
			d.Headers = append(d.Headers, header{k, v})
		}
	}
	var body bytes.Buffer
	admin.WriteBody(&body, dl.Event.Data)
	d.Body = body.String()
	c.render(w, r, http.StatusOK, "deadletter", fmt.Sprintf("Dead letter %d", seq), d)
}

// replayDeadLetters replays the selected dead letters (seq, repeated), or
// all of one consumer's (all=1 with consumer), each to its consumer only,
// and removes them from the DLQ, as `eventmesh dlq replay`.
func (c *Console) replayDeadLetters(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	consumer := r.PostForm.Get("consumer")
	if consumer != "" {
		if err := router.ValidateToken(consumer); err != nil {
			c.fail(w, r, http.StatusBadRequest, fmt.Errorf("consumer: %w", err))
			return
		}
	}
	want := map[uint64]bool{}
	for _, s := range r.PostForm["seq"] {
		seq, err := strconv.ParseUint(s, 10, 64)
		if err != nil || seq == 0 {
			c.fail(w, r, http.StatusBadRequest, fmt.Errorf("seq %q: want a sequence number", s))
			return
		}
		want[seq] = true
	}
	if len(want) == 0 && (r.PostForm.Get("all") != "1" || consumer == "") {
		c.fail(w, r, http.StatusBadRequest, errors.New("select dead letters to replay, or replay all of one consumer's"))
		return
	}
	dls, err := admin.SelectDeadLetters(r.Context(), c.deps.JS, c.deps.Subjects, admin.Selection{Consumer: consumer})
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	if len(want) > 0 {
		dls = slices.DeleteFunc(dls, func(dl consumers.DeadLetter) bool { return !want[dl.Seq] })
	}
	if len(dls) == 0 {
		done(w, r, dlqPage(consumer), "nothing to replay: replayed or purged already?")
		return
	}
	names := make([]string, len(dls))
	for i, dl := range dls {
		names[i] = dl.Consumer
	}
	var nd *admin.NoDurableError
	if err := admin.RequireDurables(r.Context(), c.deps.JS, names...); errors.As(err, &nd) {
		c.fail(w, r, http.StatusConflict, fmt.Errorf("consumer %s has no durable, so a replay would reach nobody: start the consumer first (dead letter %d)",
			nd.Consumer, dls[nd.Index].Seq))
		return
	} else if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	n, err := admin.ReplayDeadLetters(r.Context(), c.deps.JS, c.deps.Subjects, dls, time.Now)
	seqs := make([]uint64, n)
	for i := range n {
		seqs[i] = dls[i].Seq
	}
	c.log.Info("console action", "action", "replay dead letters", "consumer", consumer, "seqs", seqs, "replayed", n, "of", len(dls), "remote", remote(r), "err", err)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, fmt.Errorf("replayed %d of %d: %w", n, len(dls), err))
		return
	}
	done(w, r, dlqPage(consumer), fmt.Sprintf("replayed %d dead letters, each to its consumer only", n))
}

// dlqPage is the dead-letter list, of one consumer when set.
func dlqPage(consumer string) string {
	if consumer == "" {
		return "/dlq"
	}
	return "/dlq?consumer=" + url.QueryEscape(consumer)
}

// purgeConfirm asks before purging: dead letters cannot be replayed
// afterwards.
func (c *Console) purgeConfirm(w http.ResponseWriter, r *http.Request) {
	consumer := r.URL.Query().Get("consumer")
	if consumer != "" {
		if err := router.ValidateToken(consumer); err != nil {
			c.fail(w, r, http.StatusBadRequest, fmt.Errorf("consumer: %w", err))
			return
		}
	}
	c.render(w, r, http.StatusOK, "purge", "Purge dead letters", consumer)
}

// purge deletes the dead letters of one consumer, or all, as `eventmesh
// dlq purge --yes`; the form must carry confirm=yes.
func (c *Console) purge(w http.ResponseWriter, r *http.Request) {
	consumer := r.PostFormValue("consumer")
	if consumer != "" {
		if err := router.ValidateToken(consumer); err != nil {
			c.fail(w, r, http.StatusBadRequest, fmt.Errorf("consumer: %w", err))
			return
		}
	}
	if r.PostFormValue("confirm") != "yes" {
		c.fail(w, r, http.StatusBadRequest, errors.New("tick the confirmation to purge: purged dead letters cannot be replayed"))
		return
	}
	n, err := admin.PurgeDeadLetters(r.Context(), c.deps.JS, c.deps.Subjects, consumer)
	c.log.Info("console action", "action", "purge dead letters", "consumer", consumer, "purged", n, "remote", remote(r), "err", err)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	done(w, r, "/dlq", fmt.Sprintf("purged %d dead letters", n))
}
