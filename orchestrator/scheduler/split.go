package scheduler

// splitByWeight divides count among len(weights) parts in proportion to
// weights by the largest-remainder method: each part gets the floor of its
// exact quota, and the instances left over go one each to the parts with
// the largest fractional remainders. Ties go to the lower index, so callers
// pass parts sorted by datacenter name. Negative weights count as zero. If
// all weights are zero every part gets zero.
//
// The arithmetic is exact (integers), so 7 split 6:4 is always 4 and 3.
func splitByWeight(count int, weights []int) []int {
	out := make([]int, len(weights))
	total := 0
	for _, w := range weights {
		total += max(w, 0)
	}
	if total == 0 || count <= 0 {
		return out
	}
	rems := make([]int, len(weights))
	left := count
	for i, w := range weights {
		w = max(w, 0)
		out[i] = count * w / total
		rems[i] = count * w % total
		left -= out[i]
	}
	for ; left > 0; left-- {
		best := -1
		for i, r := range rems {
			if weights[i] > 0 && r >= 0 && (best < 0 || r > rems[best]) {
				best = i
			}
		}
		out[best]++
		rems[best] = -1 // each part gets at most one of the leftovers
	}
	return out
}
