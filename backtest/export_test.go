package backtest

// SetIDBudget sets the distinct ids kept in memory before a spill, for a
// test that is not parallel, and returns the previous budget.
func SetIDBudget(n int) int {
	old := idBudget
	idBudget = n
	return old
}
