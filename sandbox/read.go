package sandbox

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// profileView is the data of GET /profile. The sandbox does not parse
// files, so name, email and phone are "" and address is null, as for a
// profile whose parsing found nothing.
type profileView struct {
	ProfileID        string  `json:"profile_id"`
	ProfileReference string  `json:"profile_reference"`
	Name             string  `json:"name"`
	Email            string  `json:"email"`
	Phone            string  `json:"phone"`
	Address          *string `json:"address"`
	SourceID         string  `json:"source_id"`
	DateReception    phpDate `json:"date_reception"`
	DateCreation     phpDate `json:"date_creation"`
}

// getProfile handles GET /profile?source_id=&profile_id=|profile_reference=.
func (s *Server) getProfile(r *http.Request) reply {
	q := r.URL.Query()
	src := q.Get("source_id")
	if src == "" {
		return badRequest("Missing source_id")
	}
	if !s.validSource(src) {
		return badRequest("Invalid source_id: " + src)
	}
	id, ref := q.Get("profile_id"), q.Get("profile_reference")
	if id == "" && ref == "" {
		return badRequest("Missing profile_id or profile_reference")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := s.byRef[refKey{src, ref}]
	if id != "" { // profile_id wins when both are given
		i, found = s.byID[id]
		found = found && s.profiles[i].SourceID == src
	}
	if !found {
		return fail(http.StatusNotFound, "Profile not found")
	}
	p := &s.profiles[i]
	return ok(http.StatusOK, "Profile", profileView{
		ProfileID:        p.ProfileID,
		ProfileReference: p.ProfileReference,
		SourceID:         p.SourceID,
		DateReception:    newPHPDate(p.reception()),
		DateCreation:     newPHPDate(p.ReceivedAt),
	})
}

// profileItem is an element of GET /profiles.
type profileItem struct {
	ProfileID        string      `json:"profile_id"`
	ProfileReference string      `json:"profile_reference"`
	Name             string      `json:"name"`
	Email            string      `json:"email"`
	Seniority        string      `json:"seniority"`
	DateReception    phpDate     `json:"date_reception"`
	DateCreation     phpDate     `json:"date_creation"`
	Source           sourceBrief `json:"source"`
	Score            float64     `json:"score"`
	Stage            *string     `json:"stage"`
	Rating           *int        `json:"rating"`
}

type sourceBrief struct {
	SourceID string `json:"source_id"`
	Name     string `json:"name"`
	Type     string `json:"type"`
}

type profilePage struct {
	Page          int           `json:"page"`
	MaxPage       int           `json:"maxPage"`
	CountProfiles int           `json:"count_profiles"`
	Profiles      []profileItem `json:"profiles"`
}

// getProfiles handles GET /profiles?source_ids=["id",...]&page=&limit=
// &date_start=&date_end=. Profiles come in order of arrival; date_start and
// date_end bound date_reception, inclusive.
func (s *Server) getProfiles(r *http.Request) reply {
	q := r.URL.Query()
	raw := q.Get("source_ids")
	if raw == "" {
		raw = rawParam(r.URL.RawQuery, "source_ids") // unencoded, e.g. a stray %
	}
	if raw == "" {
		return badRequest("Missing source_ids")
	}
	var ids []string
	if err := json.Unmarshal([]byte(raw), &ids); err != nil || len(ids) == 0 {
		return badRequest("Invalid source_ids: a JSON array of source ids is required")
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !s.validSource(id) {
			return badRequest("Invalid source_id: " + id)
		}
		want[id] = true
	}
	page, okPage := positive(q.Get("page"), 1)
	limit, okLimit := positive(q.Get("limit"), 30)
	if !okPage {
		return badRequest("Invalid page: " + q.Get("page"))
	}
	if !okLimit {
		return badRequest("Invalid limit: " + q.Get("limit"))
	}
	limit = min(limit, 1000)
	start, err1 := parseUnix(q.Get("date_start"))
	end, err2 := parseUnix(q.Get("date_end"))
	if err1 != nil || err2 != nil {
		return badRequest("Invalid date_start or date_end: Unix seconds are required")
	}

	s.mu.Lock()
	var match []*Profile
	for i := range s.profiles {
		p := &s.profiles[i]
		t := p.reception().Unix()
		if want[p.SourceID] && (start == nil || t >= *start) && (end == nil || t <= *end) {
			match = append(match, p)
		}
	}
	out := profilePage{Page: page, CountProfiles: len(match), Profiles: []profileItem{}}
	out.MaxPage = max(1, (len(match)+limit-1)/limit)
	from := min(len(match), (page-1)*limit)
	for _, p := range match[from:min(len(match), from+limit)] {
		out.Profiles = append(out.Profiles, profileItem{
			ProfileID:        p.ProfileID,
			ProfileReference: p.ProfileReference,
			Seniority:        "all",
			DateReception:    newPHPDate(p.reception()),
			DateCreation:     newPHPDate(p.ReceivedAt),
			Source:           sourceBrief{SourceID: p.SourceID, Name: sourceName(p.SourceID), Type: "api"},
		})
	}
	s.mu.Unlock()
	return ok(http.StatusOK, "OK", out)
}

// sourceView is an element of GET /sources and the data of GET /source.
type sourceView struct {
	SourceID     string  `json:"source_id"`
	Name         string  `json:"name"`
	Type         string  `json:"type"`
	Archive      bool    `json:"archive"`
	CountSource  int     `json:"count_source"`
	DateCreation phpDate `json:"date_creation"`
}

func sourceName(id string) string { return "sandbox " + id[:min(8, len(id))] }

// created is when source id came to be: the sandbox's start with a source
// list, else (open mode) its first upload; s.mu must be held.
func (s *Server) created(id string) time.Time {
	if s.sources == nil {
		for _, seen := range s.seen {
			if seen.id == id {
				return seen.created
			}
		}
	}
	return s.started
}

// sourceViewLocked describes source id; s.mu must be held.
func (s *Server) sourceViewLocked(id string) sourceView {
	return sourceView{SourceID: id, Name: sourceName(id), Type: "api",
		CountSource: s.counts[id], DateCreation: newPHPDate(s.created(id))}
}

// getSources handles GET /sources: Options.Sources, or in open mode every
// source that received an upload, in order of first upload.
func (s *Server) getSources(*http.Request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	if s.sources != nil {
		ids = s.opts.Sources
	} else {
		for _, seen := range s.seen {
			ids = append(ids, seen.id)
		}
	}
	list := []sourceView{}
	listed := make(map[string]bool)
	for _, id := range ids {
		if !listed[id] {
			listed[id] = true
			list = append(list, s.sourceViewLocked(id))
		}
	}
	return ok(http.StatusOK, "ok", list)
}

// getSource handles GET /source?source_id=.
func (s *Server) getSource(r *http.Request) reply {
	id := r.URL.Query().Get("source_id")
	if id == "" {
		return badRequest("Missing source_id")
	}
	if !s.validSource(id) {
		return badRequest("Invalid source_id: " + id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return ok(http.StatusOK, "ok", s.sourceViewLocked(id))
}

// filterView is an element of GET /filters.
type filterView struct {
	FilterID        string  `json:"filter_id"`
	FilterReference string  `json:"filter_reference"`
	Name            string  `json:"name"`
	Archive         bool    `json:"archive"`
	DateCreation    phpDate `json:"date_creation"`
}

// filterDetail is the data of GET /filter.
type filterDetail struct {
	filterView
	Description string `json:"description"`
	Template    struct {
		Name string `json:"name"`
	} `json:"template"`
	Seniority      string         `json:"seniority"`
	Skills         []string       `json:"skills"`
	Stages         map[string]int `json:"stages"`
	ScoreThreshold float64        `json:"score_threshold"`
}

// filterViewLocked describes filter ref; s.mu must be held.
func (s *Server) filterViewLocked(ref string) filterView {
	created := s.started
	if c := s.stages[ref]; c != nil && s.filters == nil {
		created = c.created
	}
	return filterView{FilterID: filterID(ref), FilterReference: ref, Name: ref, DateCreation: newPHPDate(created)}
}

// getFilters handles GET /filters: Options.Filters, or in open mode the
// references seen in accepted uploads' training_metadata.
func (s *Server) getFilters(*http.Request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	refs := s.refOrder
	if s.filters != nil {
		refs = s.opts.Filters
	}
	list := []filterView{}
	seen := make(map[string]bool)
	for _, ref := range refs {
		if !seen[ref] {
			seen[ref] = true
			list = append(list, s.filterViewLocked(ref))
		}
	}
	return ok(http.StatusOK, "ok", list)
}

// getFilter handles GET /filter?filter_reference=|filter_id=.
func (s *Server) getFilter(r *http.Request) reply {
	q := r.URL.Query()
	ref, id := q.Get("filter_reference"), q.Get("filter_id")
	if ref == "" && id == "" {
		return badRequest("Missing filter_id or filter_reference")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ref != "" {
		if !s.knownFilter(ref) {
			return badRequest("Invalid filter_reference: " + ref)
		}
	} else {
		found := false
		if s.filters != nil {
			ref, found = s.byFID[id]
		} else {
			for _, seen := range s.refOrder {
				if filterID(seen) == id {
					ref, found = seen, true
				}
			}
		}
		if !found {
			return badRequest("Invalid filter_id: " + id)
		}
	}
	d := filterDetail{filterView: s.filterViewLocked(ref), Seniority: "all", Skills: []string{}}
	d.Template.Name = "sandbox"
	d.Stages = map[string]int{"count_yes": 0, "count_later": 0, "count_no": 0}
	if c := s.stages[ref]; c != nil {
		d.Stages = map[string]int{"count_yes": c.yes, "count_later": c.later, "count_no": c.no}
	}
	return ok(http.StatusOK, "ok", d)
}

// checkWebhook handles POST /webhook/check ("is the webhook integration
// enabled"). py-rim sends {}, node-rim no body; either is ignored.
func (s *Server) checkWebhook(r *http.Request) reply {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	if s.opts.WebhookURL == "" {
		return badRequest("Webhook integration is not configured")
	}
	sum := sha1.Sum([]byte(s.opts.WebhookURL))
	return ok(http.StatusOK, "ok", map[string]string{
		"team_name":   "sandbox",
		"webhook_id":  hex.EncodeToString(sum[:]),
		"webhook_url": s.opts.WebhookURL,
	})
}

// positive parses an optional positive integer query parameter.
func positive(v string, def int) (int, bool) {
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n > 0
}

// rawParam returns the undecoded value of name in a raw query, for clients
// that send JSON in the query string without URL-encoding it.
func rawParam(rawQuery, name string) string {
	for pair := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if k == name {
			if u, err := url.QueryUnescape(v); err == nil {
				return u
			}
			return v
		}
	}
	return ""
}
