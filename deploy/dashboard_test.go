package deploy

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestGrafanaDashboard checks grafana-wharf.json's structure: it parses,
// panel ids are unique, panels sit on the 24-column grid without
// overlapping, every panel queries the ${datasource} variable with
// non-empty, bracket-balanced expressions and distinct refIds. That every
// queried metric exists is checked against a running wharf's /metrics by
// test/e2e's TestMetricsExposition.
func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("grafana-wharf.json")
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr, RefID string
		Datasource  struct{ UID string }
	}
	var dash struct {
		Title, UID string
		Templating struct {
			List []struct{ Name, Type string }
		}
		Panels []struct {
			ID          int
			Type, Title string
			GridPos     struct{ H, W, X, Y int }
			Datasource  struct{ UID string }
			Targets     []target
			Description string
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard needs a title and a uid")
	}
	vars := map[string]string{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Errorf("template variables %v: want datasource and instance", vars)
	}
	ids := map[int]bool{}
	cells := map[[2]int]int{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v off the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := cells[[2]int{x, y}]; ok {
					t.Errorf("panel %q overlaps panel id %d at %d,%d", p.Title, other, x, y)
				}
				cells[[2]int{x, y}] = p.ID
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Description == "" {
			t.Errorf("panel %q has no description", p.Title)
		}
		if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %q, %d targets", p.Title, p.Datasource.UID, len(p.Targets))
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if refs[tg.RefID] || tg.RefID == "" {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if !balanced(tg.Expr) || !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: query %q unbalanced or not filtered by $instance", p.Title, tg.Expr)
			}
		}
	}
}

// balanced reports whether (), {} and [] nest properly outside quotes.
func balanced(s string) bool {
	var stack []rune
	pair := map[rune]rune{')': '(', '}': '{', ']': '['}
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case quoted:
		case r == '(' || r == '{' || r == '[':
			stack = append(stack, r)
		case pair[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pair[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !quoted && s != ""
}
