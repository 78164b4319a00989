//! Retry policies, retry budgets and timeouts (being written).
