package sandbox

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// hrflowTime formats t as HrFlow writes dates: ISO 8601 with a +0000
// offset, e.g. "2023-06-20T15:25:07+0000" (riminder-api.md 7.1).
func hrflowTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05-0700") }

// hrflowProfile is a profile object of the HrFlow API: the data of GET
// /v1/profile/indexing and /v1/profile/parsing, and data.profile of a sync
// upload. The sandbox parses nothing, so the parsed parts are empty, as for
// a document whose parsing found nothing.
type hrflowProfile struct {
	Key                 string             `json:"key"`
	Reference           *string            `json:"reference"` // null when none was sent
	Source              hrflowSourceBrief  `json:"source"`
	ArchivedAt          *string            `json:"archived_at"`
	UpdatedAt           string             `json:"updated_at"`
	CreatedAt           string             `json:"created_at"`
	Info                hrflowInfo         `json:"info"`
	TextLanguage        *string            `json:"text_language"`
	Text                string             `json:"text"`
	ExperiencesDuration float64            `json:"experiences_duration"`
	EducationsDuration  float64            `json:"educations_duration"`
	Experiences         []any              `json:"experiences"`
	Educations          []any              `json:"educations"`
	Attachments         []hrflowAttachment `json:"attachments"`
	Skills              []any              `json:"skills"`
	Languages           []any              `json:"languages"`
	Certifications      []any              `json:"certifications"`
	Courses             []any              `json:"courses"`
	Tasks               []any              `json:"tasks"`
	Interests           []any              `json:"interests"`
	Labels              json.RawMessage    `json:"labels"`
	Tags                json.RawMessage    `json:"tags"`
	Metadatas           json.RawMessage    `json:"metadatas"`
}

type hrflowSourceBrief struct {
	Key         string `json:"key"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	Subtype     string `json:"subtype"`
	Environment string `json:"environment"`
}

type hrflowInfo struct {
	FullName  string  `json:"full_name"`
	FirstName string  `json:"first_name"`
	LastName  string  `json:"last_name"`
	Email     string  `json:"email"`
	Phone     string  `json:"phone"`
	DateBirth *string `json:"date_birth"`
	Location  struct {
		Text *string  `json:"text"`
		Lat  *float64 `json:"lat"`
		Lng  *float64 `json:"lng"`
	} `json:"location"`
	URLs    []any   `json:"urls"`
	Picture *string `json:"picture"`
	Gender  *string `json:"gender"`
	Summary string  `json:"summary"`
}

type hrflowAttachment struct {
	Type             string `json:"type"`
	FileName         string `json:"file_name"`
	OriginalFileName string `json:"original_file_name"`
	FileSize         int64  `json:"file_size"`
	Extension        string `json:"extension"`
	CreatedAt        string `json:"created_at"`
}

func briefSource(key string) hrflowSourceBrief {
	return hrflowSourceBrief{Key: key, Name: sourceName(key), Type: "api", Subtype: "sandbox", Environment: "test"}
}

// hrflowProfileOf describes p as the HrFlow API would. A profile uploaded
// through the root API shows no labels: its training_metadata is in
// Riminder's shape.
func hrflowProfileOf(p *Profile) hrflowProfile {
	empty := json.RawMessage("[]")
	v := hrflowProfile{
		Key:         p.ProfileID,
		Source:      briefSource(p.SourceID),
		UpdatedAt:   hrflowTime(p.ReceivedAt),
		CreatedAt:   hrflowTime(p.reception()),
		Experiences: []any{}, Educations: []any{}, Skills: []any{}, Languages: []any{},
		Certifications: []any{}, Courses: []any{}, Tasks: []any{}, Interests: []any{},
		Attachments: []hrflowAttachment{{Type: "original", FileName: p.SHA256, OriginalFileName: p.FileName,
			FileSize: p.FileSize, Extension: extension(p.FileName), CreatedAt: hrflowTime(p.ReceivedAt)}},
		Labels: empty, Tags: empty, Metadatas: empty,
	}
	v.Info.URLs = []any{}
	if p.ProfileReference != "" {
		ref := p.ProfileReference
		v.Reference = &ref
	}
	if p.hrflow {
		v.Labels = p.TrainingMetadata
		if p.tags != nil {
			v.Tags = p.tags
		}
		if p.metadatas != nil {
			v.Metadatas = p.metadatas
		}
	}
	return v
}

// getIndexing handles GET /v1/profile/indexing?source_key=&key=|reference=
// (py-hf profile.storing.get).
func (s *Server) getIndexing(r *http.Request) reply {
	return s.hrflowLookup(r, "Profile indexing", false)
}

// getParsing handles GET /v1/profile/parsing?source_key=&key=|reference=|
// email=. The sandbox parses nothing, so it answers with the profile
// object, and a lookup by email (profile_email in py-hf) finds nothing.
func (s *Server) getParsing(r *http.Request) reply {
	return s.hrflowLookup(r, "Profile parsing", true)
}

// hrflowLookup finds the profile of source_key by key (which wins when both
// are given) or reference; byEmail also admits a lookup by email, which
// finds nothing. Not found is 404 "Profile not found", as on the root API;
// the docs give no message for it, and clients treat 400 and 404 alike.
func (s *Server) hrflowLookup(r *http.Request, message string, byEmail bool) reply {
	q := r.URL.Query()
	src := q.Get("source_key")
	if src == "" || !s.validSource(src) {
		return invalidSource(src)
	}
	key, ref := q.Get("key"), q.Get("reference")
	email := byEmail && q.Get("email")+q.Get("profile_email") != ""
	if key == "" && ref == "" && !email {
		if byEmail {
			return badRequest("Missing key, reference or email")
		}
		return badRequest("Missing key or reference")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var i int
	found := false
	switch {
	case key != "":
		i, found = s.byID[key]
		found = found && s.profiles[i].SourceID == src
	case ref != "":
		i, found = s.byRef[refKey{src, ref}]
	}
	if !found {
		return fail(http.StatusNotFound, "Profile not found")
	}
	return ok(http.StatusOK, message, hrflowProfileOf(&s.profiles[i]))
}

// hrflowSource is an element of GET /v1/sources and the data of GET
// /v1/source (riminder-api.md 7.2; sync_parsing as hrflow-connectors reads
// it).
type hrflowSource struct {
	Key                 string `json:"key"`
	Name                string `json:"name"`
	Description         string `json:"description"`
	Type                string `json:"type"`
	Subtype             string `json:"subtype"`
	Environment         string `json:"environment"`
	Private             bool   `json:"private"`
	Archive             bool   `json:"archive"`
	SyncParsing         bool   `json:"sync_parsing"`
	SyncParsingIndexing bool   `json:"sync_parsing_indexing"`
	CountProfiles       int    `json:"count_profiles"`
	UpdatedAt           string `json:"updated_at"`
	CreatedAt           string `json:"created_at"`
}

// hrflowSourceLocked describes source key; s.mu must be held.
func (s *Server) hrflowSourceLocked(key string) hrflowSource {
	b := briefSource(key)
	created := hrflowTime(s.created(key))
	return hrflowSource{Key: key, Name: b.Name, Description: "cvfeed sandbox source", Type: b.Type,
		Subtype: b.Subtype, Environment: b.Environment, Private: true, SyncParsing: true,
		SyncParsingIndexing: true, CountProfiles: s.counts[key], UpdatedAt: created, CreatedAt: created}
}

// hrflowPage is the meta block of GET /v1/sources.
type hrflowPage struct {
	Page    int `json:"page"`
	MaxPage int `json:"maxPage"`
	Count   int `json:"count"`
	Total   int `json:"total"`
}

// getHrFlowSources handles GET /v1/sources?name=&page=&limit=&sort_by=
// &order_by=: the sources of GET /sources (Options.Sources, or in open mode
// those that received an upload), oldest first or, with order_by=desc,
// newest first. name keeps those whose name contains it (any case);
// sort_by is accepted and ignored (there is only the date).
func (s *Server) getHrFlowSources(r *http.Request) reply {
	q := r.URL.Query()
	page, okPage := positive(q.Get("page"), 1)
	limit, okLimit := positive(q.Get("limit"), 30)
	if !okPage {
		return badRequest("Invalid page: " + q.Get("page"))
	}
	if !okLimit {
		return badRequest("Invalid limit: " + q.Get("limit"))
	}
	limit = min(limit, 1000)
	order := strings.ToLower(q.Get("order_by"))
	if order != "" && order != "asc" && order != "desc" {
		return badRequest("Invalid order_by: " + q.Get("order_by") + " (want asc or desc)")
	}
	name := strings.ToLower(q.Get("name"))

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
	var all []hrflowSource
	listed := make(map[string]bool)
	for _, id := range ids {
		if v := s.hrflowSourceLocked(id); !listed[id] && strings.Contains(strings.ToLower(v.Name), name) {
			listed[id] = true
			all = append(all, v)
		}
	}
	if order == "desc" {
		slices.Reverse(all)
	}
	from := min(len(all), (page-1)*limit)
	list := append([]hrflowSource{}, all[from:min(len(all), from+limit)]...)
	rep := ok(http.StatusOK, "Source list", list)
	rep.meta = hrflowPage{Page: page, MaxPage: max(1, (len(all)+limit-1)/limit), Count: len(list), Total: len(all)}
	return rep
}

// getHrFlowSource handles GET /v1/source?key=.
func (s *Server) getHrFlowSource(r *http.Request) reply {
	key := r.URL.Query().Get("key")
	if key == "" || !s.validSource(key) {
		return invalidSource(key)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return ok(http.StatusOK, "Source info", s.hrflowSourceLocked(key))
}

// checkHrFlowWebhook handles POST /v1/webhook/check with a JSON body
// {"url", "type"} (riminder-api.md 7.2): it answers with the team and the
// webhook, the body's url or else Options.WebhookURL, and the body's type
// or else profile.parsing.success. It sends nothing to the URL.
func (s *Server) checkHrFlowWebhook(r *http.Request) reply {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return badRequest("Invalid request: cannot read the body")
	}
	var body struct {
		URL  string `json:"url"`
		Type string `json:"type"`
	}
	if len(strings.TrimSpace(string(raw))) > 0 && json.Unmarshal(raw, &body) != nil {
		return badRequest("Invalid request: a JSON body {\"url\", \"type\"} is expected")
	}
	if body.URL == "" {
		body.URL = s.opts.WebhookURL
	}
	if body.URL == "" {
		return badRequest("Webhook integration is not configured")
	}
	if body.Type == "" {
		body.Type = "profile.parsing.success"
	}
	sum := sha1.Sum([]byte(body.URL))
	return ok(http.StatusOK, "ok", map[string]string{
		"team_name":  "sandbox",
		"webhook_id": "wid_" + hex.EncodeToString(sum[:]),
		"url":        body.URL,
		"type":       body.Type,
	})
}
