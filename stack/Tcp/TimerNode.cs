namespace UserTcp.Stack.Tcp;

/// <summary>Receives expired timers from <see cref="TimerWheel.Advance"/>.</summary>
public interface ITimerHandler
{
    /// <summary>
    /// Called once per expired node, which is already unscheduled: the handler may schedule it again (periodic
    /// timers) or schedule/cancel any other node. It must not call <see cref="TimerWheel.Advance"/>.
    /// </summary>
    void OnTimer(TimerNode node, long nowUs);
}

/// <summary>
/// An entry of a <see cref="TimerWheel"/>: the links live in the node, so scheduling and cancelling allocate nothing.
/// Subclass it (a connection is its own node) and find out in <see cref="ITimerHandler.OnTimer"/> whose timer fired
/// from the node's type. A node belongs to one wheel at a time (it does not record which one, to stay small: it
/// is part of every connection). 26 bytes of fields: two links, the due time and the slot (16 bits: the wheel has a
/// few hundred), so that the connection's own fields start 2 bytes earlier.
/// </summary>
public class TimerNode
{
    internal TimerNode? Next;
    internal TimerNode? Prev;
    private short _slot = -1;
    /// <summary>The wheel's list the node is on, -1 when not scheduled.</summary>
    internal int Slot { get => _slot; set => _slot = (short)value; }

    /// <summary>The due time given to the last <see cref="TimerWheel.Schedule"/>.</summary>
    public long DueUs { get; internal set; }

    public bool IsScheduled => Slot >= 0;
}
