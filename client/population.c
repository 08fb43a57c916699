/* A synthetic, deterministic population of Zhejiang citizens and enterprises: real GB/T 2260
 * county codes weighted by population, GB/T 4754 industry classes, plausible numbers and tags. */
#include "client/population.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/date.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* County-level divisions of Zhejiang's 11 prefecture-level cities (codes as of 2021, after
 * Hangzhou's district reform), with resident population in 10,000s (2020 census, rounded)
 * as the sampling weight. The short name is what company names start with. */
typedef struct county {
    const char *code;
    const char *name;
    int weight;
} county;

static const county counties[] = {
    /* 3301 杭州 */
    {"330102", "上城", 132},
    {"330105", "拱墅", 112},
    {"330106", "西湖", 114},
    {"330108", "滨江", 50},
    {"330109", "萧山", 201},
    {"330110", "余杭", 126},
    {"330111", "富阳", 83},
    {"330112", "临安", 64},
    {"330113", "临平", 117},
    {"330114", "钱塘", 77},
    {"330122", "桐庐", 45},
    {"330127", "淳安", 33},
    {"330182", "建德", 44},
    /* 3302 宁波 */
    {"330203", "海曙", 107},
    {"330205", "江北", 50},
    {"330206", "北仑", 83},
    {"330211", "镇海", 50},
    {"330212", "鄞州", 161},
    {"330213", "奉化", 58},
    {"330225", "象山", 57},
    {"330226", "宁海", 70},
    {"330281", "余姚", 126},
    {"330282", "慈溪", 183},
    /* 3303 温州 */
    {"330302", "鹿城", 129},
    {"330303", "龙湾", 76},
    {"330304", "瓯海", 96},
    {"330305", "洞头", 11},
    {"330324", "永嘉", 87},
    {"330326", "平阳", 86},
    {"330327", "苍南", 84},
    {"330328", "文成", 29},
    {"330329", "泰顺", 27},
    {"330381", "瑞安", 152},
    {"330382", "乐清", 145},
    {"330383", "龙港", 47},
    /* 3304 嘉兴 */
    {"330402", "南湖", 68},
    {"330411", "秀洲", 68},
    {"330421", "嘉善", 65},
    {"330424", "海盐", 45},
    {"330481", "海宁", 108},
    {"330482", "平湖", 72},
    {"330483", "桐乡", 103},
    /* 3305 湖州 */
    {"330502", "吴兴", 90},
    {"330503", "南浔", 54},
    {"330521", "德清", 55},
    {"330522", "长兴", 68},
    {"330523", "安吉", 59},
    /* 3306 绍兴 */
    {"330602", "越城", 101},
    {"330603", "柯桥", 110},
    {"330604", "上虞", 83},
    {"330624", "新昌", 44},
    {"330681", "诸暨", 122},
    {"330683", "嵊州", 67},
    /* 3307 金华 */
    {"330702", "婺城", 101},
    {"330703", "金东", 50},
    {"330723", "武义", 46},
    {"330726", "浦江", 46},
    {"330727", "磐安", 18},
    {"330781", "兰溪", 58},
    {"330782", "义乌", 186},
    {"330783", "东阳", 109},
    {"330784", "永康", 96},
    /* 3308 衢州 */
    {"330802", "柯城", 54},
    {"330803", "衢江", 37},
    {"330822", "常山", 26},
    {"330824", "开化", 25},
    {"330825", "龙游", 36},
    {"330881", "江山", 50},
    /* 3309 舟山 */
    {"330902", "定海", 52},
    {"330903", "普陀", 38},
    {"330921", "岱山", 20},
    {"330922", "嵊泗", 7},
    /* 3310 台州 */
    {"331002", "椒江", 64},
    {"331003", "黄岩", 65},
    {"331004", "路桥", 63},
    {"331022", "三门", 38},
    {"331023", "天台", 43},
    {"331024", "仙居", 43},
    {"331081", "温岭", 141},
    {"331082", "临海", 114},
    {"331083", "玉环", 64},
    /* 3311 丽水 */
    {"331102", "莲都", 56},
    {"331121", "青田", 50},
    {"331122", "缙云", 41},
    {"331123", "遂昌", 20},
    {"331124", "松阳", 20},
    {"331125", "云和", 13},
    {"331126", "庆元", 14},
    {"331127", "景宁", 11},
    {"331181", "龙泉", 25},
};

/* Indexed by the city digits 01..11 of the code (3301..3311). */
static const char *const city_names[] = {"",     "杭州", "宁波", "温州", "嘉兴", "湖州",
                                         "绍兴", "金华", "衢州", "舟山", "台州", "丽水"};

/* GB/T 4754 classes (section letter + 4-digit class), the word a company name of that trade
 * carries, and a weight: manufacturing (C) and wholesale/retail (F) dominate, as they do in
 * Zhejiang's register of market entities. */
typedef struct industry {
    const char *code;
    const char *word;
    int weight;
} industry;

static const industry industries[] = {
    {"A0111", "农业", 8},      {"A0141", "农业", 10},     {"A0412", "水产", 6},
    {"B1011", "矿业", 2},      {"C1311", "食品", 15},     {"C1513", "酒业", 6},
    {"C1713", "纺织", 30},     {"C1810", "服饰", 40},     {"C1951", "鞋业", 20},
    {"C2110", "家具", 18},     {"C2231", "包装", 12},     {"C2641", "化工", 10},
    {"C2710", "医药", 8},      {"C2929", "塑料", 22},     {"C3130", "钢铁", 6},
    {"C3311", "五金", 25},     {"C3411", "机械", 12},     {"C3484", "机械", 30},
    {"C3670", "汽配", 28},     {"C3811", "电机", 12},     {"C3851", "电器", 18},
    {"C3911", "电子", 10},     {"C3973", "半导体", 6},    {"C4090", "仪器", 8},
    {"D4416", "能源", 4},      {"E4710", "建设", 25},     {"E4812", "建设", 10},
    {"E5010", "装饰", 20},     {"F5123", "贸易", 40},     {"F5132", "服饰", 35},
    {"F5176", "贸易", 20},     {"F5211", "商贸", 45},     {"F5261", "汽车销售", 12},
    {"F5292", "电子商务", 40}, {"G5430", "物流", 25},     {"G5821", "物流", 10},
    {"H6110", "酒店", 8},      {"H6210", "餐饮", 30},     {"I6510", "科技", 25},
    {"I6513", "软件", 20},     {"I6520", "信息技术", 10}, {"J6621", "金融", 1},
    {"K7010", "房地产", 12},   {"L7212", "管理咨询", 15}, {"L7251", "广告", 15},
    {"M7320", "科技", 18},     {"M7491", "设计", 10},     {"N7721", "环保", 6},
    {"O8010", "家政", 10},     {"P8391", "教育", 8},      {"Q8411", "医疗", 3},
};

/* The distinctive two-character part of a company name (字号). */
static const char *const trade_words[] = {
    "恒达", "华信", "东方", "新源", "鼎盛", "瑞丰", "天成", "金诚", "宏远", "中联", "博远", "锦程",
    "汇通", "永泰", "嘉禾", "昌盛", "恒鑫", "明辉", "正阳", "德润", "海纳", "启明", "星辰", "创新",
    "旭日", "安达", "富春", "钱江", "之江", "西子", "越秀", "天目", "万向", "华越", "荣盛", "信达",
    "同创", "泽宇", "卓越", "协力", "宏图", "聚力", "凯达", "远航", "未来", "云帆", "青山", "绿源",
    "银河", "长风", "惠民", "立信", "高峰", "晨光", "诚信", "盛世", "恒通", "丰华", "润泽", "兴业",
};

/* Common surnames, roughly in order of frequency in Zhejiang; the sampler favours the front. */
static const char *const surnames[] = {
    "王", "陈", "张", "李", "徐", "吴", "周", "林", "金", "杨", "黄", "朱",   "胡",   "叶",
    "方", "应", "郑", "刘", "俞", "何", "钱", "沈", "孙", "赵", "蒋", "潘",   "邵",   "楼",
    "章", "施", "范", "许", "夏", "姚", "高", "陆", "谢", "余", "汪", "董",   "鲍",   "戴",
    "傅", "杜", "毛", "袁", "马", "童", "程", "郭", "丁", "虞", "宋", "卢",   "姜",   "包",
    "冯", "顾", "严", "韩", "任", "邱", "缪", "葛", "柯", "翁", "屠", "诸葛", "欧阳",
};

static const char *const given_chars[] = {
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "秀", "霞", "平", "刚", "桂", "英", "华", "文", "建", "国", "志",
    "红", "玉", "兰", "萍", "婷", "慧", "浩", "宇", "轩", "梓", "涵", "欣", "怡", "子",
    "博", "晨", "睿", "思", "雨", "佳", "嘉", "俊", "鑫", "晓", "海", "燕", "波", "斌",
    "辉", "丹", "琳", "颖", "琪", "萱", "诗", "梦", "雪", "云", "峰", "亮", "飞", "鹏",
    "凯", "瑶", "倩", "楠", "瑞", "泽", "昊", "天", "一", "可", "安", "成", "永", "春",
};

/* China's age pyramid (2020 census) by five-year band, per mille of the population; the last
 * band covers 95..100. */
static const int age_band_weights[] = {57, 65, 63, 53, 53, 65, 89, 70, 66, 81,
                                       86, 72, 52, 52, 35, 22, 14, 8,  3,  1};

struct zd_popgen {
    uint64_t seed;
    int32_t as_of;       /* day number of ZD_POPGEN_AS_OF */
    int32_t oldest_firm; /* 1980-01-01 */
    uint32_t county_cum[ARRAY_LEN(counties)];
    uint32_t industry_cum[ARRAY_LEN(industries)];
    uint32_t surname_cum[ARRAY_LEN(surnames)];
    uint32_t age_cum[ARRAY_LEN(age_band_weights)];
};

/* splitmix64: tiny, fast, and good enough for synthetic data; one stream per profile. */
static uint64_t rnd_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) by multiply-high (Lemire), bias negligible for these small n. */
static uint32_t rnd_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((rnd_next(s) >> 32) * (uint64_t)n) >> 32);
}

static double rnd_unit(uint64_t *s)
{
    return (double)(rnd_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static bool rnd_chance(uint64_t *s, double p)
{
    return rnd_unit(s) < p;
}

static double rnd_normal(uint64_t *s)
{
    double u1 = rnd_unit(s), u2 = rnd_unit(s);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static double rnd_lognormal(uint64_t *s, double median, double sigma)
{
    return median * exp(sigma * rnd_normal(s));
}

/* Index i with probability weight[i] / total, from a cumulative table. */
static size_t rnd_pick(uint64_t *s, const uint32_t *cum, size_t n)
{
    uint32_t r = rnd_below(s, cum[n - 1]);
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r < cum[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static uint64_t stream_seed(uint64_t seed, char kind, uint64_t n)
{
    uint64_t s = seed ^ ((uint64_t)(unsigned char)kind << 56) ^ (n * 0xD1B54A32D192ED03ull);
    /* Two rounds decorrelate neighbouring n before the profile's own stream starts. */
    rnd_next(&s);
    return rnd_next(&s);
}

zd_popgen *zd_popgen_new(uint64_t seed)
{
    zd_popgen *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->seed = seed;
    zd_date_parse(ZD_POPGEN_AS_OF, &g->as_of);
    g->oldest_firm = zd_date_from_ymd(1980, 1, 1);
    uint32_t sum = 0;
    for (size_t i = 0; i < ARRAY_LEN(counties); i++)
        g->county_cum[i] = sum += (uint32_t)counties[i].weight;
    sum = 0;
    for (size_t i = 0; i < ARRAY_LEN(industries); i++)
        g->industry_cum[i] = sum += (uint32_t)industries[i].weight;
    sum = 0;
    /* Zipf-like: the k-th surname is about 1/(k+3) as common as the first few. */
    for (size_t i = 0; i < ARRAY_LEN(surnames); i++)
        g->surname_cum[i] = sum += (uint32_t)(100000 / (i + 4));
    sum = 0;
    for (size_t i = 0; i < ARRAY_LEN(age_band_weights); i++)
        g->age_cum[i] = sum += (uint32_t)age_band_weights[i];
    return g;
}

void zd_popgen_free(zd_popgen *g)
{
    free(g);
}

/* A tiny appender: generated text is bounded by ZD_POPGEN_LINE_MAX, so no checks per call. */
typedef struct out {
    char *p;
} out;

static void put(out *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(o->p, s, n);
    o->p += n;
}

static void put_u64(out *o, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *o->p++ = tmp[--n];
}

/* v zero-padded to at least width digits. */
static void put_u64_pad(out *o, uint64_t v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        tmp[n++] = '0';
    while (n)
        *o->p++ = tmp[--n];
}

static void put_date(out *o, int32_t day)
{
    char d[11];
    zd_date_format(day, d);
    memcpy(o->p, d, 10);
    o->p += 10;
}

/* "+861" followed by a plausible second digit and nine random digits. */
static void put_mobile(out *o, uint64_t *s)
{
    static const char second[] = "3333355588897";
    put(o, "+861");
    *o->p++ = second[rnd_below(s, sizeof(second) - 1)];
    for (int i = 0; i < 9; i++)
        *o->p++ = (char)('0' + rnd_below(s, 10));
}

/* Picks a county and writes its code, or a street-level code (county + 3 digits) for ~30%.
 * Each county gets a fixed number of streets (6..20) derived from its code. */
static size_t put_region(const zd_popgen *g, out *o, uint64_t *s)
{
    size_t c = rnd_pick(s, g->county_cum, ARRAY_LEN(counties));
    put(o, counties[c].code);
    if (rnd_chance(s, 0.30)) {
        uint32_t h = (uint32_t)atoi(counties[c].code);
        uint32_t nstreets = 6 + (h * 2654435761u >> 16) % 15;
        put_u64_pad(o, 1 + rnd_below(s, nstreets), 3);
    }
    return c;
}

static void put_tags(out *o, const char *const *tags, const bool *on, size_t n)
{
    put(o, "\"tags\":[");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (!on[i])
            continue;
        if (!first)
            *o->p++ = ',';
        *o->p++ = '"';
        put(o, tags[i]);
        *o->p++ = '"';
        first = false;
    }
    *o->p++ = ']';
}

static const char *const citizen_tags[] = {
    "retired",
    "veteran",
    "disabled",
    "low_income",
    "student",
    "new_resident",
    "farmer",
    "flexible_employment",
    "elderly_living_alone",
};
enum {
    CT_RETIRED,
    CT_VETERAN,
    CT_DISABLED,
    CT_LOW_INCOME,
    CT_STUDENT,
    CT_NEW_RESIDENT,
    CT_FARMER,
    CT_FLEXIBLE,
    CT_ALONE,
    CT_N
};

size_t zd_popgen_citizen(const zd_popgen *g, uint64_t n, char *buf)
{
    uint64_t s = stream_seed(g->seed, 'c', n);
    out o = {buf};
    put(&o, "{\"id\":\"c");
    put_u64_pad(&o, n, 7);
    put(&o, "\",\"kind\":\"citizen\",\"region\":\"");
    put_region(g, &o, &s);

    /* A five-year band by the pyramid, then a uniform day inside it. */
    size_t band = rnd_pick(&s, g->age_cum, ARRAY_LEN(age_band_weights));
    int lo_days = (int)(band * 5 * 365.25), hi_days = (int)((band * 5 + 5) * 365.25);
    if (band == ARRAY_LEN(age_band_weights) - 1)
        hi_days = (int)(100 * 365.25);
    int32_t birth = g->as_of - lo_days - (int32_t)rnd_below(&s, (uint32_t)(hi_days - lo_days));
    int age = zd_date_age(birth, g->as_of);
    put(&o, "\",\"attrs\":{\"birth_date\":\"");
    put_date(&o, birth);
    put(&o, "\"},");

    bool t[CT_N] = {false};
    t[CT_RETIRED] = age >= 60 ? rnd_chance(&s, 0.85) : age >= 55 && rnd_chance(&s, 0.25);
    t[CT_VETERAN] = age >= 20 && rnd_chance(&s, 0.02);
    t[CT_DISABLED] = rnd_chance(&s, 0.02 + 0.0008 * age);
    t[CT_LOW_INCOME] = rnd_chance(&s, 0.03);
    t[CT_STUDENT] = age >= 6 && age <= 18    ? rnd_chance(&s, 0.97)
                    : age >= 19 && age <= 22 ? rnd_chance(&s, 0.50)
                                             : age >= 23 && age <= 24 && rnd_chance(&s, 0.15);
    t[CT_NEW_RESIDENT] = age >= 18 && age <= 60 && rnd_chance(&s, 0.15);
    t[CT_FARMER] = age >= 18 && !t[CT_STUDENT] && rnd_chance(&s, 0.08);
    t[CT_FLEXIBLE] =
        age >= 18 && age <= 60 && !t[CT_STUDENT] && !t[CT_RETIRED] && rnd_chance(&s, 0.07);
    t[CT_ALONE] = age >= 65 && rnd_chance(&s, 0.12);
    put_tags(&o, citizen_tags, t, CT_N);

    put(&o, ",\"fields\":{\"name\":\"");
    put(&o, surnames[rnd_pick(&s, g->surname_cum, ARRAY_LEN(surnames))]);
    put(&o, given_chars[rnd_below(&s, ARRAY_LEN(given_chars))]);
    if (rnd_chance(&s, 0.7))
        put(&o, given_chars[rnd_below(&s, ARRAY_LEN(given_chars))]);
    put(&o, "\"},\"contacts\":{\"zlb\":\"user-");
    put_u64(&o, n);
    put(&o, "\",\"sms\":\"");
    put_mobile(&o, &s);
    *o.p++ = '"';
    if (rnd_chance(&s, 0.40)) {
        put(&o, ",\"email\":\"user");
        put_u64(&o, n);
        put(&o, "@example.cn\"");
    }
    *o.p++ = '}';
    if (rnd_chance(&s, 0.10))
        put(&o, ",\"prefs\":{\"mute_categories\":[\"tax\"],\"quiet_hours\":\"22:00-08:00\"}");
    *o.p++ = '}';
    *o.p = '\0';
    return (size_t)(o.p - buf);
}

static const char *const enterprise_tags[] = {
    "hightech",  "srdi",     "little_giant", "export", "startup",
    "dishonest", "tech_sme", "green",        "listed",
};
enum {
    ET_HIGHTECH,
    ET_SRDI,
    ET_LITTLE_GIANT,
    ET_EXPORT,
    ET_STARTUP,
    ET_DISHONEST,
    ET_TECH_SME,
    ET_GREEN,
    ET_LISTED,
    ET_N
};

/* Registered capital as people write it: one or two significant digits (50, 300, 1200). */
static uint64_t round_capital(double v)
{
    if (v < 1)
        return 1;
    double mag = pow(10, floor(log10(v)) - 1);
    if (mag < 1)
        mag = 1;
    return (uint64_t)(floor(v / mag + 0.5) * mag);
}

size_t zd_popgen_enterprise(const zd_popgen *g, uint64_t n, char *buf)
{
    uint64_t s = stream_seed(g->seed, 'e', n);
    out o = {buf};
    put(&o, "{\"id\":\"e");
    put_u64_pad(&o, n, 7);
    put(&o, "\",\"kind\":\"enterprise\",\"region\":\"");
    size_t c = put_region(g, &o, &s);
    const industry *ind = &industries[rnd_pick(&s, g->industry_cum, ARRAY_LEN(industries))];
    char section = ind->code[0];
    bool techy = section == 'C' || section == 'I' || section == 'M';

    /* Most firms are young: age in years is exponential with a mean of 9, capped at 1980. */
    double age_years = -9.0 * log(1.0 - rnd_unit(&s));
    int32_t founded = g->as_of - (int32_t)(age_years * 365.25);
    if (founded < g->oldest_firm)
        founded = g->oldest_firm + (int32_t)rnd_below(&s, 3650);
    double age_cap = age_years > 20 ? 20 : age_years;

    /* Log-normal head count, a little larger for older firms and for manufacturing. */
    double median = 6.0 * exp(0.04 * age_cap) * (section == 'C' ? 1.8 : 1.0);
    double e = rnd_lognormal(&s, median, 1.45);
    uint64_t employees = e < 1 ? 1 : e > 20000 ? 20000 : (uint64_t)e;
    uint64_t capital = round_capital((double)employees * rnd_lognormal(&s, 12.0, 1.1) + 3);
    if (capital > 5000000)
        capital = 5000000;
    uint64_t revenue = (uint64_t)((double)employees * rnd_lognormal(&s, 35.0, 0.9));
    const char *scale = employees < 10     ? "micro"
                        : employees < 100  ? "small"
                        : employees < 1000 ? "medium"
                                           : "large";

    put(&o, "\",\"attrs\":{\"industry\":\"");
    put(&o, ind->code);
    put(&o, "\",\"employees\":");
    put_u64(&o, employees);
    put(&o, ",\"registered_capital\":");
    put_u64(&o, capital);
    put(&o, ",\"revenue\":");
    put_u64(&o, revenue);
    put(&o, ",\"founded\":\"");
    put_date(&o, founded);
    put(&o, "\",\"scale\":\"");
    put(&o, scale);
    put(&o, "\"},");

    bool t[ET_N] = {false};
    double ht = section == 'M' ? 0.35 : section == 'I' ? 0.30 : section == 'C' ? 0.12 : 0.02;
    t[ET_HIGHTECH] = rnd_chance(&s, employees < 10 ? ht * 0.4 : ht);
    t[ET_SRDI] = techy && employees >= 10 && employees < 1000 && rnd_chance(&s, 0.07);
    t[ET_LITTLE_GIANT] = t[ET_SRDI] && rnd_chance(&s, 0.08);
    t[ET_EXPORT] = rnd_chance(&s, section == 'C' ? 0.22 : section == 'F' ? 0.12 : 0.01);
    t[ET_STARTUP] = age_years < 3 && rnd_chance(&s, 0.5);
    t[ET_DISHONEST] = rnd_chance(&s, 0.01);
    t[ET_TECH_SME] = rnd_chance(&s, techy && employees < 500 ? 0.18 : 0.01);
    t[ET_GREEN] = rnd_chance(&s, section == 'D' || section == 'N' ? 0.4 : 0.05);
    t[ET_LISTED] = rnd_chance(&s, employees >= 1000 ? 0.15 : employees >= 100 ? 0.02 : 0.0003);
    put_tags(&o, enterprise_tags, t, ET_N);

    /* Company names start with the city or, for a third of them, the county. */
    put(&o, ",\"fields\":{\"company\":\"");
    if (rnd_chance(&s, 0.33))
        put(&o, counties[c].name);
    else
        put(&o, city_names[atoi(counties[c].code + 2) / 100]);
    put(&o, trade_words[rnd_below(&s, ARRAY_LEN(trade_words))]);
    put(&o, ind->word);
    put(&o, "有限公司\"},\"contacts\":{\"zlb\":\"ent-");
    put_u64(&o, n);
    put(&o, "\",\"sms\":\"");
    put_mobile(&o, &s);
    put(&o, "\",\"email\":\"hr");
    put_u64(&o, n);
    put(&o, "@example.cn\"}}");
    *o.p = '\0';
    return (size_t)(o.p - buf);
}

size_t zd_popgen_line(const zd_popgen *g, uint64_t citizens, uint64_t enterprises, uint64_t i,
                      char *buf)
{
    /* Interleave evenly: after i+1 lines, floor((i+1)*C/T) of them are citizens, so line i is a
     * citizen exactly when that count grows at i. The products stay below 2^64 for the counts
     * the client accepts (<= 10^9 each). */
    uint64_t total = citizens + enterprises;
    uint64_t c_before = i * citizens / total, c_after = (i + 1) * citizens / total;
    if (c_after > c_before)
        return zd_popgen_citizen(g, c_after, buf);
    return zd_popgen_enterprise(g, i + 1 - c_after, buf);
}

int zd_popgen_write(const zd_popgen *g, uint64_t citizens, uint64_t enterprises, FILE *f)
{
    /* One big buffer and few write calls: a million lines must take seconds, not minutes. */
    const size_t cap = 4u << 20;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    size_t len = 0;
    uint64_t total = citizens + enterprises;
    for (uint64_t i = 0; i < total; i++) {
        len += zd_popgen_line(g, citizens, enterprises, i, buf + len);
        buf[len++] = '\n';
        if (cap - len < ZD_POPGEN_LINE_MAX + 1) {
            if (fwrite(buf, 1, len, f) != len) {
                rc = -EIO;
                goto done;
            }
            len = 0;
        }
    }
    if (len && fwrite(buf, 1, len, f) != len)
        rc = -EIO;
    if (rc == 0 && fflush(f) != 0)
        rc = -EIO;
done:
    free(buf);
    return rc;
}
