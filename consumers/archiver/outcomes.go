package archiver

import "github.com/eventmesh/eventmesh/consumers/archiver/store"

// LastOutcomes returns each consumer's latest outcome of e (its outcomes
// are ordered by time), the consumers in the order they first appear: what
// happened to the event in the end, per consumer, as `eventmesh archive
// query` and the console's search show it.
func LastOutcomes(e store.Event) []store.Outcome {
	idx := map[string]int{}
	var last []store.Outcome
	for _, o := range e.Outcomes {
		i, ok := idx[o.Consumer]
		if !ok {
			idx[o.Consumer] = len(last)
			last = append(last, o)
			continue
		}
		last[i] = o
	}
	return last
}
