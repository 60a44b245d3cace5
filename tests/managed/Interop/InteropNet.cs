using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text.Json;
using System.Threading;
using UserTcp.Stack;
using UserTcp.Stack.Dpdk;
using UserTcp.Stack.Iface;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;

namespace UserTcp.Tests.Interop;

/// <summary>
/// One private copy of the scripts/testnet.sh topology: namespaces ut-cli&lt;suffix&gt; (kernel, 198.18.0.1) and
/// ut-srv&lt;suffix&gt; (the veth end our stack drives through net_af_packet, 198.18.0.2), with a suffix unique to this
/// process and call, so parallel runs never collide. Dispose always tears it down (also after a failed up).
/// </summary>
internal sealed class InteropNet : IDisposable
{
    public static readonly Ipv4Address KernelIp = new(198, 18, 0, 1);
    public static readonly Ipv4Address StackIp = new(198, 18, 0, 2);
    public const string KernelMac = "02:00:c6:12:00:01";
    public const string StackMac = "02:00:c6:12:00:02";

    private static int s_counter;
    private readonly string _script;
    private bool _down;
    private Process? _tcpdump;

    public string Suffix { get; }
    public string CliNs => "ut-cli" + Suffix;
    public string SrvNs => "ut-srv" + Suffix;
    public string Netem { get; }

    private InteropNet(string repoRoot, string suffix, string[] options)
    {
        _script = Path.Combine(repoRoot, "scripts", "testnet.sh");
        Suffix = suffix;
        Netem = string.Join(' ', options);
    }

    /// <summary>Brings the topology up; extra options go to testnet.sh (e.g. "--loss", "1").</summary>
    public static InteropNet Up(string repoRoot, params string[] options)
    {
        string suffix = $"i{Environment.ProcessId % 100000}x{Interlocked.Increment(ref s_counter)}";
        var net = new InteropNet(repoRoot, suffix, options);
        var args = new List<string> { net._script, "up", "--suffix", suffix };
        args.AddRange(options);
        var (code, output) = Run("bash", TimeSpan.FromSeconds(30), [.. args]);
        if (code != 0)
        {
            net.Dispose();
            throw new InvalidOperationException($"testnet.sh up {string.Join(' ', options)} failed ({code}): {output}");
        }
        // Debugging aid: USERTCP_INTEROP_TCPDUMP=<dir> records the kernel side of every test to <dir>/<suffix>.pcap.
        if (Environment.GetEnvironmentVariable("USERTCP_INTEROP_TCPDUMP") is { Length: > 0 } dir)
        {
            net._tcpdump = Process.Start(new ProcessStartInfo("ip",
                ["netns", "exec", net.CliNs, "tcpdump", "-U", "-n", "-s", "200", "-i", "ut-cli0", "-w", Path.Combine(dir, suffix + ".pcap")])
            { RedirectStandardError = true });
            Thread.Sleep(500); // tcpdump needs a moment before it captures
        }
        return net;
    }

    /// <summary>The stack's device: net_af_packet on ut-srv0 inside the server namespace. With
    /// <paramref name="qdiscBypass"/> false, frames go through the interface's qdisc, so netem on ut-srv0 applies to
    /// what the stack sends (the PMD bypasses it by default).</summary>
    public DpdkDevice OpenDevice(DpdkEalConfig eal, bool qdiscBypass = true) => DpdkDevice.Open(eal, new DpdkPortConfig
    {
        Device = $"net_af_packet{Suffix},iface=ut-srv0" + (qdiscBypass ? "" : ",qdisc_bypass=0"),
        NetworkNamespace = SrvNs,
        RxDescriptors = 1024,
        TxDescriptors = 1024,
    });

    /// <summary>A stack at 198.18.0.2/24 on the veth end, on its own driver thread.</summary>
    public StackDriver StartStack(DpdkEalConfig eal, bool qdiscBypass = true, TcpConfig? tcp = null, Func<DpdkDevice, UserTcp.Stack.Phy.IDevice>? wrap = null)
    {
        DpdkDevice dev = OpenDevice(eal, qdiscBypass);
        try
        {
            return new StackDriver("srv" + Suffix, wrap != null ? wrap(dev) : dev, StackConfigFor(StackIp, tcp), dev);
        }
        catch
        {
            dev.Dispose();
            throw;
        }
    }

    public static StackConfig StackConfigFor(Ipv4Address address, TcpConfig? tcp) => new()
    {
        Interface = new InterfaceConfig { Address = address, PrefixLength = 24 },
        Tcp = tcp ?? new TcpConfig { Seed = (ulong)Environment.TickCount64, SendBufferSize = 1 << 20, ReceiveBufferSize = 1 << 20 },
        BufferPoolBytes = 64L << 20,
    };

    /// <summary>Runs a command inside the kernel-side namespace.</summary>
    public (int Code, string Output) InCli(TimeSpan timeout, params string[] command)
        => Run("ip", timeout, ["netns", "exec", CliNs, .. command]);

    /// <summary>Starts tests/managed/Interop/kpeer.py inside the kernel-side namespace.</summary>
    public KernelPeer StartPeer(string repoRoot, params string[] args)
    {
        string script = Path.Combine(repoRoot, "tests", "managed", "Interop", "kpeer.py");
        return new KernelPeer("ip", ["netns", "exec", CliNs, "python3", script, .. args]);
    }

    public void Dispose()
    {
        if (_down) return;
        _down = true;
        if (_tcpdump != null)
        {
            try { _tcpdump.Kill(); _tcpdump.WaitForExit(2000); } catch (InvalidOperationException) { }
            _tcpdump.Dispose();
        }
        Run("bash", TimeSpan.FromSeconds(30), _script, "down", "--suffix", Suffix);
    }

    /// <summary>Runs a command with a time limit (the whole process tree is killed when it runs out).</summary>
    public static (int Code, string Output) Run(string file, TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true };
        using Process p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            p.WaitForExit();
            return (-1, $"timed out after {timeout.TotalSeconds:0} s: {stdout.Result}{stderr.Result}");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}

/// <summary>What kpeer.py reports (one JSON line).</summary>
internal sealed record PeerResult(long Sent, string? SentSha, long Received, string? RecvSha, string? Error,
    bool Timestamps, bool Sack, bool WindowScaling, int SndWscale, int RcvWscale, int SndMss, long TotalRetrans, double Seconds, string Raw);

/// <summary>A running kpeer.py (stdout collected line by line); disposing kills it if it still runs.</summary>
internal sealed class KernelPeer : IDisposable
{
    private readonly Process _p;
    private readonly BlockingCollection<string> _lines = new();
    private readonly System.Text.StringBuilder _stderr = new();

    public KernelPeer(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        _p = new Process { StartInfo = psi };
        _p.OutputDataReceived += (_, e) => { if (e.Data != null) _lines.Add(e.Data); else _lines.CompleteAdding(); };
        _p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_stderr) _stderr.AppendLine(e.Data); };
        _p.Start();
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
    }

    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    /// <summary>Waits for the "LISTENING" line of listen mode.</summary>
    public void WaitListening(TimeSpan timeout)
    {
        if (!_lines.TryTake(out string? line, timeout) || line != "LISTENING")
            throw new InvalidOperationException($"kpeer did not start listening within {timeout.TotalSeconds:0} s: {line} {Stderr}");
    }

    /// <summary>Waits for the result line and the process's exit.</summary>
    public PeerResult Result(TimeSpan timeout)
    {
        string? json = null;
        var sw = Stopwatch.StartNew();
        while (json == null)
        {
            TimeSpan left = timeout - sw.Elapsed;
            if (left <= TimeSpan.Zero || !_lines.TryTake(out string? line, left))
                throw new TimeoutException($"kpeer gave no result within {timeout.TotalSeconds:0} s (exited: {_p.HasExited}): {Stderr}");
            if (line.StartsWith('{')) json = line;
        }
        _p.WaitForExit(5000);
        using JsonDocument d = JsonDocument.Parse(json);
        JsonElement r = d.RootElement;
        static string? Str(JsonElement e, string name) => e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        JsonElement ti = r.TryGetProperty("tcpinfo", out JsonElement t) && t.ValueKind == JsonValueKind.Object ? t : default;
        bool B(string n) => ti.ValueKind == JsonValueKind.Object && ti.GetProperty(n).GetBoolean();
        int I(string n) => ti.ValueKind == JsonValueKind.Object ? ti.GetProperty(n).GetInt32() : -1;
        return new PeerResult(r.GetProperty("sent").GetInt64(), Str(r, "sent_sha"), r.GetProperty("received").GetInt64(), Str(r, "recv_sha"),
            Str(r, "error"), B("timestamps"), B("sack"), B("wscale"), I("snd_wscale"), I("rcv_wscale"), I("snd_mss"), I("total_retrans"),
            r.GetProperty("seconds").GetDouble(), json);
    }

    public void Dispose()
    {
        try
        {
            if (!_p.HasExited)
            {
                _p.Kill(entireProcessTree: true);
                _p.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException) { }
        _p.Dispose();
    }
}
