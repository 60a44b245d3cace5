using System;

namespace UserTcp.Stack.Iface;

/// <summary>A token bucket in virtual time: at most <c>burst</c> events back to back, then one per interval.</summary>
internal struct TokenBucket
{
    private readonly int _burst;
    private readonly long _intervalUs;
    private int _tokens;
    private long _lastRefillUs;

    public TokenBucket(int burst, long intervalUs)
    {
        _burst = Math.Max(0, burst);
        _intervalUs = Math.Max(1, intervalUs);
        _tokens = _burst;
        _lastRefillUs = long.MinValue;
    }

    public bool TryTake(long nowUs)
    {
        if (_lastRefillUs == long.MinValue) _lastRefillUs = nowUs;
        long elapsed = nowUs - _lastRefillUs;
        if (elapsed >= _intervalUs)
        {
            long add = elapsed / _intervalUs;
            _tokens = (int)Math.Min(_burst, _tokens + add);
            _lastRefillUs += add * _intervalUs;
        }
        if (_tokens == 0) return false;
        _tokens--;
        return true;
    }
}
