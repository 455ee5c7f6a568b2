"""A plain-loop GAE, the second route the golden-vector and critic tests compare purepg's GAE with."""
import numpy as np


def plain_gae(rew, v, v_next, term, trunc, gamma, lam):
    """GAE advantages (T, E) by a backward loop over each copy: delta_t = r_t + gamma V(s_t+1) - V(s_t)
    (no bootstrap after a termination; ``v_next`` holds V of the true next state, also at a
    truncation), A_t = delta_t + gamma lam A_t+1 within an episode."""
    adv = np.zeros_like(rew)
    for e in range(rew.shape[1]):
        a = 0.0
        for t in reversed(range(rew.shape[0])):
            delta = rew[t, e] + (0.0 if term[t, e] else gamma * v_next[t, e]) - v[t, e]
            a = delta + (0.0 if term[t, e] or trunc[t, e] else gamma * lam * a)
            adv[t, e] = a
    return adv
