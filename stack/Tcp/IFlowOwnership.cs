namespace UserTcp.Stack.Tcp;

/// <summary>Who handles a flow when several processes share one device and each sees every frame.</summary>
public enum FlowOwner
{
    /// <summary>This process: handle the segment as usual.</summary>
    Mine,
    /// <summary>Another process of the group: drop the segment silently (it is that process's to answer).</summary>
    Other,
    /// <summary>Nobody: a stray segment. Exactly one process of the group (the leader) answers it as TCP says.</summary>
    Nobody,
    /// <summary>Returned by <see cref="IFlowOwnership.Claim"/> only: the shared table has no room for another claim.
    /// The SYN is dropped (counted as <see cref="DropReason.TcpFlowTableFull"/>); the peer retries.</summary>
    NoRoom,
}

/// <summary>
/// Shares flows out between the processes of a group that sit on one device (e.g. nginx workers on one
/// net_af_packet interface). The TCP layer asks only for segments that match no connection of its own: a SYN to a
/// local listener claims the flow (first claimer wins), anything else is classified. Implementations keep their state
/// in memory shared by the group (interpose/FlowGroup.cs); a stack without one owns every flow.
/// </summary>
public interface IFlowOwnership
{
    /// <summary>Claims <paramref name="tuple"/> for this process if nobody holds it; returns who holds it now.</summary>
    FlowOwner Claim(in TcpTuple tuple);

    /// <summary>Who holds <paramref name="tuple"/>, without claiming it.</summary>
    FlowOwner Lookup(in TcpTuple tuple);

    /// <summary>A connection of this process is gone: its flow is free again.</summary>
    void Release(in TcpTuple tuple);

    /// <summary>True when some process of the group listens on <paramref name="port"/>.</summary>
    bool GroupListens(ushort port);

    /// <summary>True for the one process that answers segments nobody owns (RST, ICMP echo).</summary>
    bool IsLeader { get; }
}
