package router

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestPatternParseValid(t *testing.T) {
	for _, s := range []string{
		"transport.messageReceived",
		"consumption.relationshipEvent.RELabc123",
		"*",
		"**",
		"**.**",
		"transport.*",
		"transport.**",
		"*.*",
		"*.**",
		"a.**.b",
		"**.b",
		"a-b_C.D9",
		strings.Repeat("a.", MaxTriggerTokens-1) + "a",   // 16 tokens
		strings.Repeat("a", MaxTriggerBytes),             // 256 bytes
		strings.Repeat("**.", MaxTriggerTokens-1) + "**", // 16 tokens of wildcards
	} {
		p, err := ParsePattern(s)
		if err != nil {
			t.Errorf("ParsePattern(%q): %v", s, err)
			continue
		}
		if p.String() != s {
			t.Errorf("ParsePattern(%q).String() = %q", s, p.String())
		}
	}
}

func TestPatternParseInvalid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // a part of the error text besides the quoted input
	}{
		{"", "empty"},
		{"transport..x", `trigger pattern "transport..x": empty token at position 2`},
		{".transport", "empty token at position 1"},
		{"transport.", "empty token at position 2"},
		{".", "empty token at position 1"},
		{"a b", "white space"},
		{" transport.x", "white space"},
		{"transport.x\n", "white space"},
		{"transport.\tx", "white space"},
		{"a\u00a0b", "white space"},
		{">", `">" is not allowed`},
		{"transport.>", `">" is not allowed`},
		{"a>", `">" is not allowed`},
		{"***", "whole token"},
		{"trans*", "whole token"},
		{"a.*b", "whole token"},
		{"a/b", "not allowed"},
		{"a:b", "not allowed"},
		{"ä", "not allowed"},
		{"a\x00", "not allowed"},
		{"a\xffb", "invalid UTF-8"},
		{"a,b", "not allowed"},
		{strings.Repeat("a.", MaxTriggerTokens) + "a", "17 tokens"},
		{strings.Repeat("a", MaxTriggerBytes+1), "257 bytes"},
	} {
		_, err := ParsePattern(tc.in)
		if err == nil {
			t.Errorf("ParsePattern(%q): no error", tc.in)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, strconv.Quote(tc.in)) {
			t.Errorf("ParsePattern(%q): error %q does not quote the input", tc.in, msg)
		}
		if !strings.Contains(msg, tc.want) {
			t.Errorf("ParsePattern(%q): error %q does not mention %q", tc.in, msg, tc.want)
		}
		if !errors.Is(err, ErrInvalidTrigger) {
			t.Errorf("ParsePattern(%q): error %q does not wrap ErrInvalidTrigger", tc.in, msg)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		yes     []string
		no      []string
	}{
		{
			pattern: "transport.messageReceived",
			yes:     []string{"transport.messageReceived"},
			no: []string{"transport", "transport.messageReceivedX", "transport.messageReceived.x",
				"x.transport.messageReceived", "Transport.messageReceived"},
		},
		{
			// An exact name is not a prefix.
			pattern: "transport",
			yes:     []string{"transport"},
			no:      []string{"transport.messageReceived", "transports"},
		},
		{
			pattern: "transport.*",
			yes:     []string{"transport.messageReceived", "transport.x"},
			// '*' is exactly one token: not zero, not two.
			no: []string{"transport", "transport.a.b", "consumption.x"},
		},
		{
			pattern: "*",
			yes:     []string{"transport", "x"},
			no:      []string{"transport.messageReceived"},
		},
		{
			pattern: "*.*",
			yes:     []string{"a.b"},
			no:      []string{"a", "a.b.c"},
		},
		{
			pattern: "**",
			yes:     []string{"a", "transport.messageReceived", "consumption.relationshipEvent.REL1", strings.Repeat("a.", 15) + "a"},
		},
		{
			// '**' matches zero tokens: the parent itself.
			pattern: "transport.**",
			yes:     []string{"transport", "transport.x", "transport.x.y"},
			no:      []string{"transports", "transportX.y", "consumption.transport", "x.transport.y"},
		},
		{
			pattern: "a.**.b",
			yes:     []string{"a.b", "a.x.b", "a.x.y.b", "a.b.b", "a.b.x.b"},
			no:      []string{"a", "b", "a.b.c", "x.a.b", "a.x"},
		},
		{
			pattern: "**.b",
			yes:     []string{"b", "x.b", "x.y.b", "b.b"},
			no:      []string{"b.x", "bb", "x.bb"},
		},
		{
			pattern: "*.**",
			yes:     []string{"a", "a.b", "a.b.c"},
		},
		{
			// EventEmitter2's tree walk fires this for "a"; the documented
			// rule (and this package) does not: '*' needs a token.
			pattern: "a.**.*",
			yes:     []string{"a.x", "a.x.y"},
			no:      []string{"a", "b.x"},
		},
		{
			pattern: "**.**",
			yes:     []string{"a", "a.b"},
		},
		{
			pattern: "a.**.b.**.c",
			yes:     []string{"a.b.c", "a.x.b.y.c", "a.b.b.c.c", "a.b.c.b.c"},
			no:      []string{"a.c.b", "a.b", "a.b.c.d"},
		},
		{
			pattern: "consumption.relationshipEvent.*",
			yes:     []string{"consumption.relationshipEvent.RELabc"},
			no:      []string{"consumption.relationshipEvent", "consumption.relationshipEventX.a"},
		},
		{
			// Invalid namespaces match nothing, even "**".
			pattern: "**",
			no: []string{"", ".", "a..b", ".a", "a.", "a b", "a.*", "a.>", "*", ">", "ä",
				strings.Repeat("a.", 16) + "a", strings.Repeat("a", 257)},
		},
		{
			pattern: "a.*",
			no:      []string{"a.*", "a.>", "a. b"},
		},
	} {
		p, err := ParsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", tc.pattern, err)
		}
		for _, ns := range tc.yes {
			if !p.Match(ns) {
				t.Errorf("%q.Match(%q) = false, want true", tc.pattern, ns)
			}
		}
		for _, ns := range tc.no {
			if p.Match(ns) {
				t.Errorf("%q.Match(%q) = true, want false", tc.pattern, ns)
			}
		}
	}
	if (Pattern{}).Match("a") {
		t.Error("zero Pattern matched")
	}
}

func TestPatternFilterSubject(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		subject string
		exact   bool
	}{
		{"transport.messageReceived", "enmeshed.transport.messageReceived", true},
		{"transport", "enmeshed.transport", true},
		{"*", "enmeshed.*", true},
		{"*.*", "enmeshed.*.*", true},
		{"transport.*", "enmeshed.transport.*", true},
		{"**", "enmeshed.>", true},
		{"**.**", "enmeshed.>", true},
		{"*.**", "enmeshed.>", true},
		{"**.*", "enmeshed.>", true},
		{"*.*.**", "enmeshed.*.>", true},
		{"a.*.**", "enmeshed.a.>", true},
		{"a.**.*", "enmeshed.a.>", true},
		{"a.**.*.*", "enmeshed.a.*.>", true},
		{"a.**.*.**.*", "enmeshed.a.*.>", true},
		// "**" matching zero tokens means the parent must be covered too.
		{"transport.**", "enmeshed.>", false},
		{"a.b.**", "enmeshed.a.>", false},
		{"a.b.**.**", "enmeshed.a.>", false},
		// Literals after "**" only set a minimum length.
		{"a.**.b", "enmeshed.a.>", false},
		{"a.**.b.c", "enmeshed.a.*.>", false},
		{"a.**.b.**", "enmeshed.a.>", false},
		{"**.b", "enmeshed.>", false},
		{"a.*.**.b", "enmeshed.a.*.>", false},
	} {
		p, err := ParsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", tc.pattern, err)
		}
		subject, exact := p.FilterSubject(DefaultPrefix)
		if subject != tc.subject || exact != tc.exact {
			t.Errorf("%q.FilterSubject = %q, %v; want %q, %v", tc.pattern, subject, exact, tc.subject, tc.exact)
		}
	}

	p, _ := ParsePattern("transport.*")
	if s, exact := p.FilterSubject(""); s != "transport.*" || !exact {
		t.Errorf("FilterSubject with empty prefix = %q, %v", s, exact)
	}
	if s, exact := p.FilterSubject("a.b"); s != "a.b.transport.*" || !exact {
		t.Errorf("FilterSubject with prefix a.b = %q, %v", s, exact)
	}
	if s, exact := (Pattern{}).FilterSubject(DefaultPrefix); s != "" || exact {
		t.Errorf("zero Pattern FilterSubject = %q, %v; want \"\", false", s, exact)
	}
}

func TestPatternsParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"transport.messageReceived", []string{"transport.messageReceived"}},
		{"a,b", []string{"a", "b"}},
		{"a, b", []string{"a", "b"}},
		{" a ,\n\tb.*  c.** ,", []string{"a", "b.*", "c.**"}},
		{"a,,b", []string{"a", "b"}},
		{"a,a", []string{"a", "a"}},
	} {
		ps, err := ParsePatterns(tc.in)
		if err != nil {
			t.Errorf("ParsePatterns(%q): %v", tc.in, err)
			continue
		}
		got := make([]string, len(ps))
		for i, p := range ps {
			got[i] = p.String()
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ParsePatterns(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if s := ps.String(); s != strings.Join(tc.want, ",") {
			t.Errorf("ParsePatterns(%q).String() = %q", tc.in, s)
		}
		again, err := ParsePatterns(ps.String())
		if err != nil || again.String() != ps.String() {
			t.Errorf("ParsePatterns(%q) does not round-trip: %v, %v", ps.String(), again, err)
		}
	}

	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", []string{"no pattern"}},
		{" ,\n, ", []string{"no pattern"}},
		{"transport.*, transport..x", []string{"pattern 2 of 2", `"transport..x"`, "empty token at position 2"}},
		{"a.>", []string{"pattern 1 of 1", `">" is not allowed`}},
	} {
		_, err := ParsePatterns(tc.in)
		if err == nil {
			t.Errorf("ParsePatterns(%q): no error", tc.in)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, strconv.Quote(tc.in)) {
			t.Errorf("ParsePatterns(%q): error %q does not quote the input", tc.in, msg)
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("ParsePatterns(%q): error %q does not mention %q", tc.in, msg, w)
			}
		}
		if !errors.Is(err, ErrInvalidTrigger) {
			t.Errorf("ParsePatterns(%q): error %q does not wrap ErrInvalidTrigger", tc.in, msg)
		}
	}
}

func TestPatternsMatch(t *testing.T) {
	ps, err := ParsePatterns("transport.messageReceived, consumption.*")
	if err != nil {
		t.Fatal(err)
	}
	for ns, want := range map[string]bool{
		"transport.messageReceived":       true,
		"consumption.attributeCreated":    true,
		"transport.messageSent":           false,
		"consumption":                     false,
		"consumption.relationshipEvent.x": false,
	} {
		if got := ps.Match(ns); got != want {
			t.Errorf("%v.Match(%q) = %v, want %v", ps, ns, got, want)
		}
	}
	if (Patterns{}).Match("a") || Patterns(nil).Match("a") {
		t.Error("empty Patterns matched")
	}
}

func TestPatternsFilterSubjects(t *testing.T) {
	for _, tc := range []struct {
		in       string
		subjects []string
		exact    bool
	}{
		{"**", []string{"enmeshed.>"}, true},
		{"transport.messageReceived", []string{"enmeshed.transport.messageReceived"}, true},
		// The zero-token case of "**" costs one more subject, not exactness.
		{"transport.**", []string{"enmeshed.transport", "enmeshed.transport.>"}, true},
		{"transport.**, transport", []string{"enmeshed.transport", "enmeshed.transport.>"}, true},
		{"transport.**, transport.messageReceived, transport.*", []string{"enmeshed.transport", "enmeshed.transport.>"}, true},
		{"transport.messageReceived, transport.*", []string{"enmeshed.transport.*"}, true},
		{"transport.*, **", []string{"enmeshed.>"}, true},
		{"transport.*, *.**, consumption.x", []string{"enmeshed.>"}, true},
		{"transport.messageSent, consumption.attributeCreated, transport.messageReceived",
			[]string{"enmeshed.consumption.attributeCreated", "enmeshed.transport.messageReceived", "enmeshed.transport.messageSent"}, true},
		{"a.b, a.b", []string{"enmeshed.a.b"}, true},
		// Neither covers the other.
		{"*.x, a.*", []string{"enmeshed.*.x", "enmeshed.a.*"}, true},
		{"a.*, a.*.*", []string{"enmeshed.a.*", "enmeshed.a.*.*"}, true},
		{"a.*.*, a.**.*.*", []string{"enmeshed.a.*.>"}, true},
		// a.> (from a.*.**) covers a.*.
		{"a.*, a.*.**", []string{"enmeshed.a.>"}, true},
		{"a.**.b, a.c", []string{"enmeshed.a.>"}, false},
		{"**.b, transport.*", []string{"enmeshed.>"}, false},
		{"a.**.b, c", []string{"enmeshed.a.>", "enmeshed.c"}, false},
	} {
		ps, err := ParsePatterns(tc.in)
		if err != nil {
			t.Fatalf("ParsePatterns(%q): %v", tc.in, err)
		}
		subjects, exact := ps.FilterSubjects(DefaultPrefix)
		if !slices.Equal(subjects, tc.subjects) || exact != tc.exact {
			t.Errorf("%q.FilterSubjects = %q, %v; want %q, %v", tc.in, subjects, exact, tc.subjects, tc.exact)
		}
	}
	if s, exact := (Patterns{}).FilterSubjects(DefaultPrefix); s != nil || exact {
		t.Errorf("empty Patterns FilterSubjects = %q, %v; want nil, false", s, exact)
	}
	if s, exact := (Patterns{{}}).FilterSubjects(DefaultPrefix); s != nil || exact {
		t.Errorf("zero-Pattern Patterns FilterSubjects = %q, %v; want nil, false", s, exact)
	}
}

// TestPatternProperties checks Match against an independent reference
// matcher and the filter subjects against NATS matching: exhaustively over
// a small alphabet, then on random longer patterns and namespaces.
func TestPatternProperties(t *testing.T) {
	var patterns, namespaces []string
	// Every pattern of 1..4 tokens over {a, b, *, **} and every namespace
	// of 1..4 tokens over {a, b}: 340 x 30 pairs, every short edge case.
	patterns = words([]string{"a", "b", "*", "**"}, 4)
	namespaces = words([]string{"a", "b"}, 4)
	rng := rand.New(rand.NewPCG(1, 2)) // fixed seed: failures reproduce
	for range 300 {
		patterns = append(patterns, randomWord(rng, []string{"a", "b", "c", "*", "**"}, MaxTriggerTokens))
	}
	for range 300 {
		namespaces = append(namespaces, randomWord(rng, []string{"a", "b", "c"}, MaxTriggerTokens))
	}

	parsed := make([]Pattern, len(patterns))
	for i, s := range patterns {
		p, err := ParsePattern(s)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", s, err)
		}
		parsed[i] = p
		checkPattern(t, p, namespaces)
	}

	// Lists of 1..3 patterns: the union must cover and, when exact, be
	// exact; no subject may be covered by another.
	for range 2000 {
		var ps Patterns
		for range 1 + rng.IntN(3) {
			ps = append(ps, parsed[rng.IntN(len(parsed))])
		}
		checkPatterns(t, ps, namespaces)
	}
}

// checkPattern asserts the properties of one pattern on namespaces.
func checkPattern(t *testing.T, p Pattern, namespaces []string) {
	t.Helper()
	subject, exact := p.FilterSubject(DefaultPrefix)
	for _, ns := range namespaces {
		got := p.Match(ns)
		if want := refMatch(strings.Split(p.String(), "."), strings.Split(ns, ".")); got != want {
			t.Fatalf("%q.Match(%q) = %v, reference says %v", p, ns, got, want)
		}
		nats := natsMatch(subject, DefaultPrefix+"."+ns)
		if got && !nats {
			t.Fatalf("%q matches %q but its filter %q does not", p, ns, subject)
		}
		if exact && nats && !got {
			t.Fatalf("%q: filter %q is exact but matches %q, which the pattern does not", p, subject, ns)
		}
	}
}

// checkPatterns asserts the properties of a pattern list on namespaces.
func checkPatterns(t *testing.T, ps Patterns, namespaces []string) {
	t.Helper()
	subjects, exact := ps.FilterSubjects(DefaultPrefix)
	if !slices.IsSorted(subjects) || len(slices.Compact(slices.Clone(subjects))) != len(subjects) {
		t.Fatalf("%v: subjects %q not sorted and distinct", ps, subjects)
	}
	for i, f := range subjects {
		for j, g := range subjects {
			// g covers f iff g matches f's instances with a token unknown
			// to g for each '*', and one and two such tokens for '>'.
			if i != j && natsMatch(g, instance(f, "zz")) && natsMatch(g, instance(f, "zz.zz")) {
				t.Fatalf("%v: subject %q is covered by %q", ps, f, g)
			}
		}
	}
	for _, ns := range namespaces {
		got := ps.Match(ns)
		nats := false
		for _, s := range subjects {
			nats = nats || natsMatch(s, DefaultPrefix+"."+ns)
		}
		if got && !nats {
			t.Fatalf("%v matches %q but none of %q does", ps, ns, subjects)
		}
		if exact && nats && !got {
			t.Fatalf("%v: filters %q are exact but match %q, which the patterns do not", ps, subjects, ns)
		}
	}
}

// natsMatch reports whether NATS delivers subject to a subscription on
// filter: '*' is one token, '>' (last only) is one or more tokens.
func natsMatch(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, ft := range f {
		if ft == ">" {
			return i == len(f)-1 && len(s) > i
		}
		if i >= len(s) || ft != "*" && ft != s[i] {
			return false
		}
	}
	return len(f) == len(s)
}

// instance replaces the wildcards of a filter with concrete tokens: '*'
// with "zz", '>' with gt.
func instance(filter, gt string) string {
	toks := strings.Split(filter, ".")
	for i, t := range toks {
		switch t {
		case "*":
			toks[i] = "zz"
		case ">":
			toks[i] = gt
		}
	}
	return strings.Join(toks, ".")
}

// refMatch is the documented rule written as plainly as possible, by
// dynamic programming: m[i][j] is whether pat[i:] matches ns[j:]. It shares
// no code with matchTokens.
func refMatch(pat, ns []string) bool {
	m := make([][]bool, len(pat)+1)
	for i := range m {
		m[i] = make([]bool, len(ns)+1)
	}
	m[len(pat)][len(ns)] = true
	for i := len(pat) - 1; i >= 0; i-- {
		for j := len(ns); j >= 0; j-- {
			switch {
			case pat[i] == "**":
				m[i][j] = m[i+1][j] || j < len(ns) && m[i][j+1]
			case j == len(ns):
				m[i][j] = false
			case pat[i] == "*" || pat[i] == ns[j]:
				m[i][j] = m[i+1][j+1]
			}
		}
	}
	return m[0][0]
}

// words returns every dot-joined word of 1..n tokens over alphabet.
func words(alphabet []string, n int) []string {
	var out []string
	level := []string{""}
	for range n {
		var next []string
		for _, w := range level {
			for _, a := range alphabet {
				if w == "" {
					next = append(next, a)
				} else {
					next = append(next, w+"."+a)
				}
			}
		}
		out = append(out, next...)
		level = next
	}
	return out
}

// randomWord returns a dot-joined word of 1..n tokens over alphabet.
func randomWord(rng *rand.Rand, alphabet []string, n int) string {
	toks := make([]string, 1+rng.IntN(n))
	for i := range toks {
		toks[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return strings.Join(toks, ".")
}

func FuzzPattern(f *testing.F) {
	for _, seed := range [][2]string{
		{"transport.messageReceived", "transport.messageReceived"},
		{"transport.*", "transport.messageSent"},
		{"transport.**", "transport"},
		{"**", "consumption.relationshipEvent.REL1"},
		{"a.**.b", "a.b"},
		{"a.**.b.**.c", "a.x.b.y.c"},
		{"**.b", "b"},
		{"*.**", "a"},
		{"transport..x", "transport.x"},
		{"a.>", "a.b"},
		{"a b", "a"},
		{"trans*", "transport"},
		{"", ""},
		{"ä.*", "a.b"},
		{"a\xff", "a"},
		{strings.Repeat("**.", 15) + "**", strings.Repeat("a.", 15) + "a"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, s, ns string) {
		p, err := ParsePattern(s)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("ParsePattern(%q): error %q does not quote the input", s, err)
			}
			if p.Match(ns) {
				t.Fatalf("failed ParsePattern(%q) returned a matching Pattern", s)
			}
		} else {
			if p.String() != s {
				t.Fatalf("ParsePattern(%q).String() = %q", s, p.String())
			}
			again, err := ParsePattern(p.String())
			if err != nil || !slices.Equal(again.tokens, p.tokens) {
				t.Fatalf("ParsePattern(%q) does not round-trip: %v", s, err)
			}
			got := p.Match(ns)
			valid := ValidateTrigger(ns) == nil
			if want := valid && refMatch(p.tokens, strings.Split(ns, ".")); got != want {
				t.Fatalf("%q.Match(%q) = %v, want %v", s, ns, got, want)
			}
			subject, exact := p.FilterSubject(DefaultPrefix)
			nats := valid && natsMatch(subject, DefaultPrefix+"."+ns)
			if got && !nats || exact && nats && !got {
				t.Fatalf("%q, %q: Match %v, filter %q (exact %v) matches %v", s, ns, got, subject, exact, nats)
			}
			// Instances of the pattern must match it: "*" as one token,
			// "**" as none and as two.
			for _, repl := range []string{"", "y.y"} {
				var toks []string
				for _, tok := range p.tokens {
					switch {
					case tok == "*":
						toks = append(toks, "x")
					case tok == "**" && repl != "":
						toks = append(toks, repl)
					case tok != "**":
						toks = append(toks, tok)
					}
				}
				inst := strings.Join(toks, ".")
				if ValidateTrigger(inst) == nil && !p.Match(inst) {
					t.Fatalf("%q does not match its instance %q", s, inst)
				}
			}
		}
		// Lists: never panic, round-trip when valid.
		if ps, err := ParsePatterns(s); err == nil {
			again, err := ParsePatterns(ps.String())
			if err != nil || again.String() != ps.String() {
				t.Fatalf("ParsePatterns(%q) does not round-trip: %v", s, err)
			}
			ps.Match(ns)
			ps.FilterSubjects(DefaultPrefix)
		}
	})
}
