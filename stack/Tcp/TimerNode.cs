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
/// Create one per timer when the owner (a connection) is created. Subclass it, or use <see cref="Owner"/> and
/// <see cref="Kind"/> to find out in <see cref="ITimerHandler.OnTimer"/> whose timer fired.
/// </summary>
public class TimerNode
{
    internal TimerNode? Next;
    internal TimerNode? Prev;
    internal TimerWheel? Wheel;
    internal long DueTick;
    internal int Slot = -1;

    public TimerNode()
    {
    }

    public TimerNode(object? owner, int kind)
    {
        Owner = owner;
        Kind = kind;
    }

    /// <summary>Free for the user: typically the connection.</summary>
    public object? Owner;
    /// <summary>Free for the user: which of the owner's timers this is.</summary>
    public int Kind;

    /// <summary>The due time given to the last <see cref="TimerWheel.Schedule"/>.</summary>
    public long DueUs { get; internal set; }

    public bool IsScheduled => Slot >= 0;
}
