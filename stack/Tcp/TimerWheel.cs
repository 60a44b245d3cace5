using System;
using System.Numerics;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// A hierarchical timing wheel (Varghese and Lauck) for millions of intrusive timers: O(1) schedule and cancel,
/// no allocation, time in microseconds supplied by the caller.
///
/// Time is cut into ticks of <see cref="TickUs"/>. A timer due at d µs belongs to tick ceil(d / TickUs) and fires
/// when <see cref="Advance"/> is called with now &gt;= that tick's start: never early, and late by less than one
/// tick when the caller advances to <see cref="NextDue"/>.
///
/// Layout: 7 levels of 64 slots. Level L slot i covers ticks whose bits [6L, 6L+6) equal i; a timer sits on the
/// lowest level L where its tick and the current tick agree above bit 6(L+1) (so level 0 holds the next 64 ticks,
/// level 1 the next 4096, ...; with 1 ms ticks the seven levels span 2^42 ms, ~139 years). Timers beyond that wait
/// on an overflow list. When the current tick enters a new level-L slot, that slot's timers are re-filed on lower
/// levels (cascade). A 64-bit occupancy mask per level lets Advance and NextDue jump over empty ticks, so a long
/// idle period costs one step per occupied slot, not one per tick.
/// </summary>
public sealed class TimerWheel
{
    private const int Bits = 6;
    private const int SlotsPerLevel = 1 << Bits;
    private const int Levels = 7;
    private const int WheelSlots = Levels * SlotsPerLevel;
    // Extra lists after the wheel slots.
    private const int ReadySlot = WheelSlots;        // due at or before the current tick: fire on the next Advance
    private const int OverflowSlot = WheelSlots + 1; // beyond the top level
    private const int FiringSlot = WheelSlots + 2;   // being fired right now

    // The list heads sit in a struct so that storing a node (a TcpConnection: a subclass) needs no covariant
    // array-store check (StelemRef walks the type's parents: ~70 instructions a store, ~6 stores per short connection).
    private struct Head { public TimerNode? Node; }
    private readonly Head[] _heads = new Head[WheelSlots + 3];
    private readonly ulong[] _occupied = new ulong[Levels];
    private long _now;          // every tick <= _now has been processed
    private bool _advancing;

    /// <param name="tickUs">Resolution in microseconds (default 1 ms).</param>
    /// <param name="startUs">The current time.</param>
    public TimerWheel(long tickUs = 1000, long startUs = 0)
    {
        if (tickUs <= 0) throw new ArgumentOutOfRangeException(nameof(tickUs));
        TickUs = tickUs;
        _now = FloorDiv(startUs, tickUs);
    }

    public long TickUs { get; }
    /// <summary>Timers currently scheduled.</summary>
    public int Count { get; private set; }

    /// <summary>Whether the node is scheduled (on this wheel: a node is only ever used with one).</summary>
    public bool IsScheduled(TimerNode node) => node.Slot >= 0;

    /// <summary>Schedules (or moves) <paramref name="node"/> to fire at <paramref name="dueUs"/>.</summary>
    public void Schedule(TimerNode node, long dueUs)
    {
        if (node.Slot >= 0)
        {
            Unlink(node);
            Count--;
        }
        node.DueUs = dueUs;
        File(node);
        Count++;
    }

    /// <summary>Unschedules <paramref name="node"/>. Returns false if it was not scheduled.</summary>
    public bool Cancel(TimerNode node)
    {
        if (node.Slot < 0) return false;
        Unlink(node);
        node.Slot = -1;
        Count--;
        return true;
    }

    /// <summary>
    /// Fires every timer due at or before <paramref name="nowUs"/> (in tick order; timers of the same tick in no
    /// particular order) and returns how many fired. Timers the handler schedules at or before now fire on the next
    /// event of this call or on the next call, so a handler that keeps re-arming cannot loop forever.
    /// </summary>
    public int Advance(long nowUs, ITimerHandler handler)
    {
        if (_advancing) throw new InvalidOperationException("TimerWheel.Advance is not reentrant");
        _advancing = true;
        int fired = 0;
        try
        {
            fired += FireList(ReadySlot, nowUs, handler);
            long target = FloorDiv(nowUs, TickUs);
            while (true)
            {
                long t = NextEventTick();
                if (t > target) break;
                _now = t;
                // Re-file the slots whose span starts at t; File puts each timer straight on its new level (or ready).
                if ((t & ((1L << (Bits * Levels)) - 1)) == 0) Cascade(OverflowSlot);
                for (int level = Levels - 1; level >= 1; level--)
                {
                    if ((t & ((1L << (Bits * level)) - 1)) == 0)
                        Cascade(level * SlotsPerLevel + (int)((t >> (Bits * level)) & (SlotsPerLevel - 1)));
                }
                // Timers due exactly at t that came down by cascade were filed as ready.
                fired += FireList(ReadySlot, nowUs, handler);
                fired += FireList((int)(t & (SlotsPerLevel - 1)), nowUs, handler);
            }
            if (target > _now) _now = target;
        }
        finally
        {
            _advancing = false;
        }
        return fired;
    }

    /// <summary>
    /// When to call <see cref="Advance"/> next: <see cref="long.MaxValue"/> if nothing is scheduled, a time at or
    /// before the last Advance if something is already due, otherwise the start of the next tick in which the wheel
    /// has work. That is the earliest timer's tick when it lies within the next 64 ticks; for a farther timer it is
    /// the tick at which its slot cascades (never after the timer, at most one extra wake-up per level).
    /// O(levels).
    /// </summary>
    public long NextDue()
    {
        if (_heads[ReadySlot].Node != null) return _now * TickUs;
        long t = NextEventTick();
        return t == long.MaxValue ? long.MaxValue : t * TickUs;
    }

    /// <summary>The next tick at which a slot fires or cascades, or long.MaxValue.</summary>
    private long NextEventTick()
    {
        for (int level = 0; level < Levels; level++)
        {
            ulong occupied = _occupied[level];
            if (occupied == 0) continue;
            int shift = Bits * level;
            int current = (int)((_now >> shift) & (SlotsPerLevel - 1));
            // Only slots after the current one can hold timers (earlier ones belong to the next rotation and are
            // filed one level up).
            ulong later = current == SlotsPerLevel - 1 ? 0 : occupied & (~0UL << (current + 1));
            if (later == 0) continue;
            int slot = BitOperations.TrailingZeroCount(later);
            long blockBase = (_now >> (shift + Bits)) << (shift + Bits);
            // Lower levels always come due before higher ones, so the first occupied level decides.
            return blockBase + ((long)slot << shift);
        }
        if (_heads[OverflowSlot].Node != null) return ((_now >> (Bits * Levels)) + 1) << (Bits * Levels);
        return long.MaxValue;
    }

    private void File(TimerNode node)
    {
        long d = CeilDiv(node.DueUs, TickUs);
        int slot;
        if (d <= _now)
        {
            slot = ReadySlot;
        }
        else
        {
            // The highest bit where d and now differ picks the level; d's digit on that level picks the slot.
            int level = (63 - BitOperations.LeadingZeroCount((ulong)(d ^ _now))) / Bits;
            slot = level >= Levels
                ? OverflowSlot
                : level * SlotsPerLevel + (int)((d >> (Bits * level)) & (SlotsPerLevel - 1));
        }
        Link(node, slot);
    }

    private void Cascade(int slot)
    {
        TimerNode? node = _heads[slot].Node;
        if (node == null) return;
        _heads[slot].Node = null;
        if (slot < WheelSlots) _occupied[slot >> Bits] &= ~(1UL << (slot & (SlotsPerLevel - 1)));
        while (node != null)
        {
            TimerNode? next = node.Next;
            File(node);
            node = next;
        }
    }

    private int FireList(int slot, long nowUs, ITimerHandler handler)
    {
        TimerNode? head = _heads[slot].Node;
        if (head == null) return 0;
        // Move the list aside first: the handler may file new timers into `slot` (the ready list) and may cancel
        // nodes still waiting here, which must stay properly linked.
        _heads[slot].Node = null;
        if (slot < WheelSlots) _occupied[slot >> Bits] &= ~(1UL << (slot & (SlotsPerLevel - 1)));
        _heads[FiringSlot].Node = head;
        for (TimerNode? n = head; n != null; n = n.Next) n.Slot = FiringSlot;
        int fired = 0;
        while (_heads[FiringSlot].Node is TimerNode node)
        {
            Unlink(node);
            node.Slot = -1;
            Count--;
            fired++;
            handler.OnTimer(node, nowUs);
        }
        return fired;
    }

    private void Link(TimerNode node, int slot)
    {
        TimerNode? head = _heads[slot].Node;
        node.Prev = null;
        node.Next = head;
        if (head != null) head.Prev = node;
        _heads[slot].Node = node;
        node.Slot = slot;
        if (slot < WheelSlots) _occupied[slot >> Bits] |= 1UL << (slot & (SlotsPerLevel - 1));
    }

    private void Unlink(TimerNode node)
    {
        int slot = node.Slot;
        if (node.Prev != null) node.Prev.Next = node.Next;
        else _heads[slot].Node = node.Next;
        if (node.Next != null) node.Next.Prev = node.Prev;
        node.Next = null;
        node.Prev = null;
        if (slot < WheelSlots && _heads[slot].Node == null) _occupied[slot >> Bits] &= ~(1UL << (slot & (SlotsPerLevel - 1)));
    }

    private static long FloorDiv(long a, long b)
    {
        long q = a / b;
        return (a % b != 0 && a < 0) ? q - 1 : q;
    }

    private static long CeilDiv(long a, long b)
    {
        long q = a / b;
        return (a % b != 0 && a > 0) ? q + 1 : q;
    }
}
