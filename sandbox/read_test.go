package sandbox

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
)

func TestGetProfile(t *testing.T) {
	s, srv := start(t, strictOptions(""))
	upload(t, srv.URL, "secret", field("source_id", srcA), field("profile_reference", "ref/é 1"),
		field("timestamp_reception", "1530607434"), filePart("cv.pdf", "x"))
	upload(t, srv.URL, "secret", field("source_id", srcB), filePart("cv.pdf", "y"))
	p := s.Profiles()[0]
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return srv.URL + "/profile?" + v.Encode()
	}
	tests := []struct {
		name, url, key string
		status         int
		msg            string
	}{
		{"by reference", q("source_id", srcA, "profile_reference", "ref/é 1"), "secret", 200, "Profile"},
		{"by id", q("source_id", srcA, "profile_id", p.ProfileID), "ronly", 200, "Profile"},
		{"id wins over reference", q("source_id", srcA, "profile_id", p.ProfileID, "profile_reference", "zzz"), "secret", 200, "Profile"},
		{"no source_id", q("profile_reference", "ref/é 1"), "secret", 400, "Missing source_id"},
		{"unlisted source", q("source_id", srcC, "profile_reference", "ref/é 1"), "secret", 400, "Invalid source_id: " + srcC},
		{"no id", q("source_id", srcA), "secret", 400, "Missing profile_id or profile_reference"},
		{"unknown reference", q("source_id", srcA, "profile_reference", "nope"), "secret", 404, "Profile not found"},
		{"reference in another source", q("source_id", srcB, "profile_reference", "ref/é 1"), "secret", 404, "Profile not found"},
		{"id in another source", q("source_id", srcB, "profile_id", p.ProfileID), "secret", 404, "Profile not found"},
		{"write-only key", q("source_id", srcA, "profile_id", p.ProfileID), "wonly", 403, "Forbidden. This secret key has no read permission"},
		{"unknown key", q("source_id", srcA, "profile_id", p.ProfileID), "bad", 401, "Unauthorized. Invalid secret key: bad for permission: read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, tt.url, tt.key)
			if r.status != tt.status || r.Message != tt.msg {
				t.Fatalf("GET = %d %q, want %d %q", r.status, r.Message, tt.status, tt.msg)
			}
			if r.status != 200 {
				if string(r.Data) != "null" {
					t.Errorf("error data = %s, want null", r.Data)
				}
				return
			}
			want := sorted("profile_id", "profile_reference", "name", "email", "phone", "address",
				"source_id", "date_reception", "date_creation")
			if got := keysOf(t, r.Data); !slices.Equal(got, want) {
				t.Errorf("keys = %v, want %v", got, want)
			}
			var v profileView
			decode(t, r.Data, &v)
			if v.ProfileID != p.ProfileID || v.ProfileReference != "ref/é 1" || v.SourceID != srcA ||
				v.DateReception.Date != "2018-07-03 08:43:54.000000" || v.DateCreation.TimezoneType != 3 {
				t.Errorf("data = %+v", v)
			}
		})
	}
}

func TestGetProfiles(t *testing.T) {
	_, srv := start(t, strictOptions(""))
	for i := range 5 {
		upload(t, srv.URL, "secret", field("source_id", srcA), field("profile_reference", "a"+strconv.Itoa(i)),
			field("timestamp_reception", strconv.Itoa(1000+i)), filePart("cv.pdf", "x"))
	}
	upload(t, srv.URL, "secret", field("source_id", srcB), field("profile_reference", "b0"), filePart("cv.pdf", "x"))
	enc := func(q string) string { return srv.URL + "/profiles?" + q }
	ids := url.QueryEscape(`["` + srcA + `"]`)

	tests := []struct {
		name, url string
		status    int
		msg       string
		count     int
		maxPage   int
		refs      []string
	}{
		{"encoded", enc("source_ids=" + ids), 200, "OK", 5, 1, []string{"a0", "a1", "a2", "a3", "a4"}},
		{"unencoded", enc(`source_ids=["` + srcA + `","` + srcB + `"]`), 200, "OK", 6, 1, []string{"a0", "a1", "a2", "a3", "a4", "b0"}},
		{"page 2", enc("source_ids=" + ids + "&page=2&limit=2"), 200, "OK", 5, 3, []string{"a2", "a3"}},
		{"page past the end", enc("source_ids=" + ids + "&page=9&limit=2"), 200, "OK", 5, 3, []string{}},
		{"limit clamped", enc("source_ids=" + ids + "&limit=5000"), 200, "OK", 5, 1, []string{"a0", "a1", "a2", "a3", "a4"}},
		{"dates", enc("source_ids=" + ids + "&date_start=1001&date_end=1003"), 200, "OK", 3, 1, []string{"a1", "a2", "a3"}},
		{"missing", enc("page=1"), 400, "Missing source_ids", 0, 0, nil},
		{"not an array", enc("source_ids=" + srcA), 400, "Invalid source_ids: a JSON array of source ids is required", 0, 0, nil},
		{"empty array", enc("source_ids=[]"), 400, "Invalid source_ids: a JSON array of source ids is required", 0, 0, nil},
		{"unlisted source", enc(`source_ids=["` + srcC + `"]`), 400, "Invalid source_id: " + srcC, 0, 0, nil},
		{"bad page", enc("source_ids=" + ids + "&page=0"), 400, "Invalid page: 0", 0, 0, nil},
		{"bad limit", enc("source_ids=" + ids + "&limit=x"), 400, "Invalid limit: x", 0, 0, nil},
		{"bad date", enc("source_ids=" + ids + "&date_start=yesterday"), 400, "Invalid date_start or date_end: Unix seconds are required", 0, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, tt.url, "ronly")
			if r.status != tt.status || r.Message != tt.msg {
				t.Fatalf("GET = %d %q, want %d %q", r.status, r.Message, tt.status, tt.msg)
			}
			if r.status != 200 {
				return
			}
			if got, want := keysOf(t, r.Data), sorted("page", "maxPage", "count_profiles", "profiles"); !slices.Equal(got, want) {
				t.Errorf("keys = %v, want %v", got, want)
			}
			var page struct {
				Page, MaxPage int
				Count         int               `json:"count_profiles"`
				Profiles      []json.RawMessage `json:"profiles"`
			}
			decode(t, r.Data, &page)
			if page.Count != tt.count || page.MaxPage != tt.maxPage || page.Profiles == nil {
				t.Errorf("page = %+v, want count %d maxPage %d", page, tt.count, tt.maxPage)
			}
			refs := []string{}
			for _, raw := range page.Profiles {
				want := sorted("profile_id", "profile_reference", "name", "email", "seniority", "date_reception",
					"date_creation", "source", "score", "stage", "rating")
				if got := keysOf(t, raw); !slices.Equal(got, want) {
					t.Errorf("profile keys = %v, want %v", got, want)
				}
				var item profileItem
				decode(t, raw, &item)
				if !isHex(item.ProfileID, 40) || item.Source.Type != "api" || item.Source.SourceID == "" {
					t.Errorf("profile = %+v", item)
				}
				refs = append(refs, item.ProfileReference)
			}
			if !slices.Equal(refs, tt.refs) {
				t.Errorf("references = %v, want %v", refs, tt.refs)
			}
		})
	}
}

func TestSourcesAndFilters(t *testing.T) {
	_, strict := start(t, strictOptions(""))
	_, open := start(t, Options{})
	upload(t, strict.URL, "secret", field("source_id", srcA), filePart("cv.pdf", "x"),
		field("training_metadata", `[{"filter_reference":"developer","stage":"YES"}]`))
	upload(t, open.URL, "k", field("source_id", srcC), filePart("cv.pdf", "x"),
		field("training_metadata", `[{"filter_reference":"ops","stage":"NO"},{"filter_reference":"ops","stage":"LATER"}]`))

	type list = []map[string]any
	ids := func(t *testing.T, r apiResponse, key string) []string {
		var l list
		decode(t, r.Data, &l)
		var out []string
		for _, e := range l {
			out = append(out, e[key].(string))
		}
		return out
	}
	t.Run("sources", func(t *testing.T) {
		r := get(t, strict.URL+"/sources", "secret")
		if got := ids(t, r, "source_id"); r.status != 200 || !slices.Equal(got, []string{srcA, srcB}) {
			t.Fatalf("GET /sources = %d %v", r.status, got)
		}
		if r.Meta != nil {
			t.Errorf("GET /sources has meta %s; only the HrFlow list has one", r.Meta)
		}
		var l list
		decode(t, r.Data, &l)
		if got, want := keysOf(t, []byte(mustJSON(t, l[0]))), sorted("source_id", "name", "type", "archive", "count_source", "date_creation"); !slices.Equal(got, want) {
			t.Errorf("keys = %v, want %v", got, want)
		}
		if l[0]["type"] != "api" || l[0]["archive"] != false || l[0]["count_source"] != 1.0 || l[1]["count_source"] != 0.0 {
			t.Errorf("sources = %v", l)
		}
		if got := ids(t, get(t, open.URL+"/sources", "k"), "source_id"); !slices.Equal(got, []string{srcC}) {
			t.Errorf("open GET /sources = %v, want the source seen", got)
		}
	})
	t.Run("source", func(t *testing.T) {
		for _, tt := range []struct {
			url    string
			status int
			msg    string
		}{
			{strict.URL + "/source?source_id=" + srcB, 200, "ok"},
			{strict.URL + "/source?source_id=" + srcC, 400, "Invalid source_id: " + srcC},
			{strict.URL + "/source", 400, "Missing source_id"},
			{open.URL + "/source?source_id=" + srcA, 200, "ok"},
			{open.URL + "/source?source_id=xyz", 400, "Invalid source_id: xyz"},
		} {
			if r := get(t, tt.url, "secret"); r.status != tt.status || r.Message != tt.msg {
				t.Errorf("GET %s = %d %q, want %d %q", tt.url, r.status, r.Message, tt.status, tt.msg)
			} else if r.status == 200 {
				var v sourceView
				decode(t, r.Data, &v)
				if !is40Hex(v.SourceID) || v.Type != "api" || v.DateCreation.Timezone != "UTC" {
					t.Errorf("source = %+v", v)
				}
			}
		}
	})
	t.Run("filters", func(t *testing.T) {
		r := get(t, strict.URL+"/filters", "secret")
		if got := ids(t, r, "filter_reference"); !slices.Equal(got, []string{"data-scientist", "developer"}) {
			t.Errorf("GET /filters = %v", got)
		}
		if got := ids(t, r, "filter_id"); got[0] != filterID("data-scientist") || !isHex(got[0], 40) {
			t.Errorf("filter ids = %v", got)
		}
		if got := ids(t, get(t, open.URL+"/filters", "k"), "filter_reference"); !slices.Equal(got, []string{"ops"}) {
			t.Errorf("open GET /filters = %v, want the references seen", got)
		}
	})
	t.Run("filter", func(t *testing.T) {
		for _, tt := range []struct {
			url, ref string
			status   int
			msg      string
			stages   map[string]int
		}{
			{strict.URL + "/filter?filter_reference=developer", "developer", 200, "ok", map[string]int{"count_yes": 1, "count_later": 0, "count_no": 0}},
			{strict.URL + "/filter?filter_id=" + filterID("data-scientist"), "data-scientist", 200, "ok", map[string]int{"count_yes": 0, "count_later": 0, "count_no": 0}},
			{strict.URL + "/filter?filter_reference=ops", "", 400, "Invalid filter_reference: ops", nil},
			{strict.URL + "/filter?filter_id=" + srcC, "", 400, "Invalid filter_id: " + srcC, nil},
			{strict.URL + "/filter", "", 400, "Missing filter_id or filter_reference", nil},
			{open.URL + "/filter?filter_reference=never-seen", "never-seen", 200, "ok", map[string]int{"count_yes": 0, "count_later": 0, "count_no": 0}},
			{open.URL + "/filter?filter_id=" + filterID("ops"), "ops", 200, "ok", map[string]int{"count_yes": 0, "count_later": 1, "count_no": 1}},
		} {
			r := get(t, tt.url, "secret")
			if r.status != tt.status || r.Message != tt.msg {
				t.Errorf("GET %s = %d %q, want %d %q", tt.url, r.status, r.Message, tt.status, tt.msg)
				continue
			}
			if r.status != 200 {
				continue
			}
			want := sorted("filter_id", "filter_reference", "name", "description", "template", "seniority",
				"skills", "stages", "score_threshold", "archive", "date_creation")
			if got := keysOf(t, r.Data); !slices.Equal(got, want) {
				t.Errorf("keys = %v, want %v", got, want)
			}
			var d struct {
				FilterID  string         `json:"filter_id"`
				Reference string         `json:"filter_reference"`
				Stages    map[string]int `json:"stages"`
			}
			decode(t, r.Data, &d)
			if d.Reference != tt.ref || d.FilterID != filterID(tt.ref) || !equalMaps(d.Stages, tt.stages) {
				t.Errorf("GET %s data = %+v", tt.url, d)
			}
		}
	})
}

func equalMaps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestWebhookCheck(t *testing.T) {
	_, without := start(t, Options{})
	if r := do(t, http.MethodPost, without.URL+"/webhook/check", "k", "application/json", nil); r.status != 400 ||
		r.Message != "Webhook integration is not configured" {
		t.Errorf("without webhook: %d %q", r.status, r.Message)
	}
	_, with := start(t, Options{WebhookURL: "http://127.0.0.1:9/hook", WebhookSecret: "s"})
	r := do(t, http.MethodPost, with.URL+"/webhook/check", "k", "application/json", nil)
	var d map[string]string
	decode(t, r.Data, &d)
	if r.status != 200 || d["team_name"] != "sandbox" || d["webhook_url"] != "http://127.0.0.1:9/hook" || !isHex(d["webhook_id"], 40) {
		t.Errorf("POST /webhook/check = %d %v", r.status, d)
	}
}
