"""The live control plane: snapshot, plan, apply, dispatch, observe, reconcile."""
