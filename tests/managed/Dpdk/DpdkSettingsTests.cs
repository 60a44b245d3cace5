using System.Collections.Generic;
using UserTcp.Stack.Dpdk;
using Xunit;

namespace UserTcp.Tests.Dpdk;

public sealed class DpdkSettingsTests
{
    private static bool Read(Dictionary<string, string> env, out DpdkEalConfig eal, out DpdkPortConfig port, out string error) =>
        DpdkSettings.TryRead(n => env.TryGetValue(n, out string? v) ? v : null, out eal, out port, out error);

    [Fact]
    public void NoDevice_IsAnErrorThatNamesTheVariable()
    {
        Assert.False(Read(new(), out _, out _, out string error));
        Assert.Contains("USERTCP_DEV", error);
    }

    [Fact]
    public void Defaults_WithOnlyTheDevice()
    {
        Assert.True(Read(new() { ["USERTCP_DEV"] = "net_af_packet0,iface=ut-srv0" }, out var eal, out var port, out _));
        Assert.Equal("net_af_packet0,iface=ut-srv0", port.Device);
        Assert.Equal(1, port.RxQueues);
        Assert.Equal(1024, port.RxDescriptors);
        Assert.Equal(32, port.MaxBurst);
        Assert.True(port.ChecksumOffload);
        Assert.Null(port.NetworkNamespace);
        Assert.Equal(DpdkHugepages.Auto, eal.Hugepages);
        Assert.Equal(128, eal.MemoryMb);
        Assert.Empty(eal.PciDevices);
        Assert.Empty(eal.ExtraArgs);
    }

    [Fact]
    public void EveryVariable_IsApplied()
    {
        var env = new Dictionary<string, string>
        {
            ["USERTCP_DEV"] = "0000:00:05.0",
            ["USERTCP_DPDK_NETNS"] = "ut-srv", ["USERTCP_DPDK_QUEUES"] = "4", ["USERTCP_DPDK_RX_DESC"] = "512",
            ["USERTCP_DPDK_TX_DESC"] = "256", ["USERTCP_DPDK_MTU"] = "9000", ["USERTCP_DPDK_PROMISC"] = "yes",
            ["USERTCP_DPDK_BURST"] = "64", ["USERTCP_DPDK_POOL"] = "16383", ["USERTCP_DPDK_OFFLOAD"] = "0",
            ["USERTCP_DPDK_CPUS"] = "2-3", ["USERTCP_DPDK_MEMORY_MB"] = "512", ["USERTCP_DPDK_HUGEPAGES"] = "required",
            ["USERTCP_DPDK_PCI"] = "0000:00:05.0, 0000:00:06.0", ["USERTCP_DPDK_LOG_LEVEL"] = "*:debug",
            ["USERTCP_DPDK_FILE_PREFIX"] = "app1", ["USERTCP_DPDK_ARGS"] = "--huge-unlink  -n 4", ["USERTCP_DPDK_GLUE"] = "/opt/x.so",
        };
        Assert.True(Read(env, out var eal, out var port, out string error), error);
        Assert.Equal("0000:00:05.0", port.Device);
        Assert.Equal("ut-srv", port.NetworkNamespace);
        Assert.Equal(4, port.RxQueues);
        Assert.Equal(4, port.TxQueues);
        Assert.Equal(512, port.RxDescriptors);
        Assert.Equal(256, port.TxDescriptors);
        Assert.Equal(9000, port.Mtu);
        Assert.True(port.Promiscuous);
        Assert.Equal(64, port.MaxBurst);
        Assert.Equal(16383, port.PoolSize);
        Assert.False(port.ChecksumOffload);
        Assert.Equal("2-3", eal.Cpus);
        Assert.Equal(512, eal.MemoryMb);
        Assert.Equal(DpdkHugepages.Required, eal.Hugepages);
        Assert.Equal(["0000:00:05.0", "0000:00:06.0"], eal.PciDevices);
        Assert.Equal("*:debug", eal.LogLevel);
        Assert.Equal("app1", eal.FilePrefix);
        Assert.Equal(["--huge-unlink", "-n", "4"], eal.ExtraArgs);
        Assert.Equal("/opt/x.so", eal.GluePath);
    }

    [Theory]
    [InlineData("USERTCP_DPDK_QUEUES", "0")]
    [InlineData("USERTCP_DPDK_QUEUES", "x")]
    [InlineData("USERTCP_DPDK_RX_DESC", "-5")]
    [InlineData("USERTCP_DPDK_MTU", "100000")]
    [InlineData("USERTCP_DPDK_PROMISC", "maybe")]
    [InlineData("USERTCP_DPDK_HUGEPAGES", "sometimes")]
    public void MalformedValue_IsAnErrorNamingTheVariable(string name, string value)
    {
        Assert.False(Read(new() { ["USERTCP_DEV"] = "net_null0", [name] = value }, out _, out _, out string error));
        Assert.Contains(name, error);
    }
}
