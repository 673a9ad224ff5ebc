// Package autoaccept is the auto-accept consumer: it accepts incoming
// relationship requests through the Connector's REST API, as the
// Connector's own autoAcceptPendingRelationships module does, plus
// allow-lists of templates and peers, a dry-run mode, and idempotence that
// survives redeliveries and lost replies.
package autoaccept

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/prometheus/client_golang/prometheus"
)

// Name is the durable name of the auto-accept consumer.
const Name = "autoaccept"

// Namespace is the only event the consumer handles.
const Namespace = "transport.relationshipChanged"

// Config is the auto-accept consumer's configuration.
type Config struct {
	Enabled   bool   `env:"AUTOACCEPT_ENABLED" envDefault:"false" desc:"run the auto-accept consumer (needs CONNECTOR_URL and CONNECTOR_API_KEY)"`
	Templates string `env:"AUTOACCEPT_TEMPLATES" desc:"accept only relationships from these relationship template ids (RLT…, comma-separated); empty: any"`
	Peers     string `env:"AUTOACCEPT_PEERS" desc:"accept only relationships with these peer addresses (comma-separated); empty: any"`
	DryRun    bool   `env:"AUTOACCEPT_DRY_RUN" envDefault:"false" desc:"only log what would be accepted"`
}

func list(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })
}

// Validate checks the allow-lists.
func (c Config) Validate() error {
	for _, t := range list(c.Templates) {
		if !strings.HasPrefix(t, "RLT") {
			return fmt.Errorf("AUTOACCEPT_TEMPLATES: %q is not a relationship template id (RLT…)", t)
		}
	}
	return nil
}

// API is the part of the Connector client the consumer needs.
type API interface {
	IdentityInfo(ctx context.Context) (connector.IdentityInfo, error)
	Relationship(ctx context.Context, id string) (connector.Relationship, error)
	AcceptRelationship(ctx context.Context, id string) (connector.Relationship, error)
}

// Handler decides and accepts.
type Handler struct {
	api       API
	templates []string
	peers     []string
	dryRun    bool
	log       *slog.Logger

	mu      sync.Mutex
	address string                   // the Connector's own address, from IdentityInfo
	busy    map[string]chan struct{} // relationships being decided in this process

	accepted prometheus.Counter
	skipped  *prometheus.CounterVec
}

// NewHandler returns the handler; its metrics go to reg.
func NewHandler(api API, c Config, reg prometheus.Registerer, log *slog.Logger) *Handler {
	h := &Handler{api: api, busy: map[string]chan struct{}{}, templates: list(c.Templates), peers: list(c.Peers), dryRun: c.DryRun, log: log.With("consumer", Name),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "eventmesh_autoaccept_accepted_total",
			Help: "Relationships accepted through the Connector's API."}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eventmesh_autoaccept_skipped_total",
			Help: "relationshipChanged events not accepted, by reason."}, []string{"reason"}),
	}
	reg.MustRegister(h.accepted, h.skipped)
	return h
}

// relationship is the part of a RelationshipDTO the decision reads (and,
// before v5, changes instead of auditLog).
type relationship struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Peer       string `json:"peer"`
	TemplateID string `json:"templateId"`
	Template   *struct {
		ID string `json:"id"`
	} `json:"template"` // before v5
	AuditLog []struct {
		CreatedBy string `json:"createdBy"`
	} `json:"auditLog"`
	Changes []struct {
		Request struct {
			CreatedBy string `json:"createdBy"`
		} `json:"request"`
	} `json:"changes"` // before v5
}

// Handle accepts a pending relationship that the peer created, once.
func (h *Handler) Handle(ctx context.Context, d consumers.Delivery) error {
	if d.Event.Namespace != Namespace {
		return nil
	}
	var r relationship
	if err := json.Unmarshal(d.Event.Data, &r); err != nil || r.ID == "" {
		return consumers.Permanent(fmt.Errorf("relationshipChanged without a readable RelationshipDTO: %v", err))
	}
	creator, entries := "", len(r.AuditLog)
	if r.AuditLog != nil {
		if entries > 0 {
			creator = r.AuditLog[0].CreatedBy
		}
	} else {
		entries = len(r.Changes)
		if entries > 0 {
			creator = r.Changes[0].Request.CreatedBy
		}
	}
	template := r.TemplateID
	if template == "" && r.Template != nil {
		template = r.Template.ID
	}
	log := h.log.With("relationship", r.ID, "event_id", d.Event.ID)
	switch {
	case r.Status != "Pending":
		return h.skip("not_pending")
	case entries != 1:
		return h.skip("not_a_new_request")
	}
	own, err := h.ownAddress(ctx)
	if err != nil {
		return h.apiError(err, "read the Connector's identity")
	}
	switch {
	case creator == own || creator != r.Peer:
		return h.skip("own_request")
	case len(h.templates) > 0 && !slices.Contains(h.templates, template):
		log.Info("not accepting: template not in AUTOACCEPT_TEMPLATES", "template", template)
		return h.skip("template_not_allowed")
	case len(h.peers) > 0 && !slices.Contains(h.peers, r.Peer):
		log.Info("not accepting: peer not in AUTOACCEPT_PEERS")
		return h.skip("peer_not_allowed")
	}
	// One decision per relationship at a time in this process: two copies
	// of the event (webhook and poller) must not both see Pending.
	if err := h.lock(ctx, r.ID); err != nil {
		return consumers.Retry(err, 0)
	}
	defer h.unlock(r.ID)
	// Read first: a redelivered event, or one whose relationship moved on,
	// must not lead to a second Accept.
	cur, err := h.api.Relationship(ctx, r.ID)
	if err != nil {
		return h.apiError(err, "read relationship "+r.ID)
	}
	if cur.Status != "Pending" {
		log.Info("relationship no longer pending; nothing to do", "status", cur.Status)
		return h.skip("already_" + strings.ToLower(cur.Status))
	}
	if h.dryRun {
		log.Info("dry run: would accept the relationship", "template", template)
		return h.skip("dry_run")
	}
	if _, err := h.api.AcceptRelationship(ctx, r.ID); err != nil {
		// The reply may be lost after the Connector accepted, or a retry
		// refused because the first one went through: look again.
		if connector.IsAuth(err) {
			return h.apiError(err, "accept relationship "+r.ID)
		}
		if after, rerr := h.api.Relationship(ctx, r.ID); rerr == nil && after.Status == "Active" {
			log.Info("relationship is active: the accept went through although its reply did not", "err", err)
			h.accepted.Inc()
			return nil
		}
		return h.apiError(err, "accept relationship "+r.ID)
	}
	log.Info("relationship accepted", "template", template)
	h.accepted.Inc()
	return nil
}

func (h *Handler) skip(reason string) error {
	h.skipped.WithLabelValues(reason).Inc()
	return nil
}

// apiError maps a Connector error to the runtime's verdicts: a rejected
// API key pauses the consumer (every event would fail the same way); the
// Connector unavailable is retried by the schedule; a refusal is
// dead-lettered with the Connector's error code.
func (h *Handler) apiError(err error, what string) error {
	err = fmt.Errorf("%s: %w", what, err)
	switch {
	case connector.IsAuth(err):
		return consumers.Pause(fmt.Errorf("%w — the Connector rejects CONNECTOR_API_KEY: fix it, then `eventmesh consumer resume %s`", err, Name))
	case connector.IsUnavailable(err),
		// Cut short by a drain, not refused: the next delivery decides.
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return consumers.Retry(err, 0)
	}
	return consumers.Permanent(err)
}

// ownAddress returns the Connector's own address, read once.
func (h *Handler) ownAddress(ctx context.Context) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.address != "" {
		return h.address, nil
	}
	info, err := h.api.IdentityInfo(ctx)
	if err != nil {
		return "", err
	}
	h.address = info.Address
	return h.address, nil
}

func (h *Handler) lock(ctx context.Context, id string) error {
	for {
		h.mu.Lock()
		wait, held := h.busy[id]
		if !held {
			h.busy[id] = make(chan struct{})
			h.mu.Unlock()
			return nil
		}
		h.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (h *Handler) unlock(id string) {
	h.mu.Lock()
	close(h.busy[id])
	delete(h.busy, id)
	h.mu.Unlock()
}
