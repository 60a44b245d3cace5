using System;
using System.Text;
using UserTcp.Interpose.Native;
using UserTcp.Stack;
using UserTcp.Stack.Dpdk;
using UserTcp.Stack.Phy;

namespace UserTcp.Interpose;

/// <summary>
/// The stack's packet counters in the log at process exit (level info: <c>USERTCP_LOG=info</c>), so a lost SYN or a
/// full ring shows up as a named, counted drop instead of a guess. Only non-zero counters are written.
/// </summary>
internal static class CounterReport
{
    internal static void Log(StackCounters c, IDevice? device)
    {
        var line = new StringBuilder("counters:");
        void Add(string name, long value)
        {
            if (value == 0) return;
            if (line.Length > 900) Flush(line);
            line.Append(' ').Append(name).Append('=').Append(value);
        }
        Add("rx_packets", c.RxPackets);
        Add("tx_packets", c.TxPackets);
        Add("tcp_in", c.TcpSegmentsIn);
        Add("tcp_out", c.TcpSegmentsOut);
        Add("passive_opens", c.TcpPassiveOpens);
        Add("active_opens", c.TcpActiveOpens);
        Add("retransmits", c.TcpRetransmits);
        Add("timeouts", c.TcpTimeouts);
        Add("rst_sent", c.TcpRstSent);
        Add("rst_received", c.TcpRstReceived);
        Add("syn_cookies_sent", c.TcpSynCookiesSent);
        Add("syn_cookies_accepted", c.TcpSynCookiesAccepted);
        if (device is DpdkDevice dpdk)
        {
            try
            {
                // The device's own view: frames the kernel ring or the PMD dropped before the stack saw them.
                DpdkPortStats p = dpdk.Port.GetStats();
                Add("dev_rx", (long)p.RxPackets);
                Add("dev_tx", (long)p.TxPackets);
                Add("dev_rx_missed", (long)p.RxMissed);
                Add("dev_rx_errors", (long)p.RxErrors);
                Add("dev_tx_errors", (long)p.TxErrors);
                Add("dev_rx_nombuf", (long)p.RxNoMbuf);
            }
            catch (DpdkException) { }
        }
        Flush(line);
        line.Append("drops:");
        for (var r = DropReason.None + 1; r < DropReason.Count; r++) Add(r.ToString(), c.Drops(r));
        Flush(line);
    }

    private static void Flush(StringBuilder line)
    {
        if (line.ToString().IndexOf(' ') > 0) Kernel.Log(2, line.ToString());
        line.Clear();
    }
}
